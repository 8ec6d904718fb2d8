/* TinyStudio instruction counter: a QEMU TCG plugin (API v1) that counts executed guest instructions.
 *
 * Arguments (comma separated after the plugin path):
 *   out=FILE       write the JSON result to FILE (default: stderr)
 *   start=ADDR     region start: the first instruction of a marker function (e.g. ts_bench_begin)
 *   stop=ADDR      region stop: the first instruction of the closing marker (e.g. ts_bench_end)
 *   tbs=on         also write a histogram of translation blocks: [vaddr, instructions, executions]
 *   windows=on     also write each window's own count, in order (at most MAX_WINDOWS; per-layer tables)
 * The region count sums, over every start..stop window, the instructions executed from the start
 * instruction up to (not including) the stop instruction. Counting is inline at block entry, so a
 * window boundary inside a block is corrected with the number of instructions left in that block.
 * Built on first use with the host C compiler: cc -O2 -shared -fPIC insncount.c -o libinsncount.so
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_api.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t total;                      /* instructions of every block entered, added inline */
static uint64_t start_pc = UINT64_MAX, stop_pc = UINT64_MAX;
static uint64_t region, windows, open_at;
static int region_open;
static int dump_tbs, dump_windows;
#define MAX_WINDOWS 65536
static uint64_t *window_counts;
static char *out_path;

struct tb_rec {
    uint64_t vaddr, n, execs;
    struct tb_rec *next;
};
static struct tb_rec *tbs;

/* `left` = instructions from the marker to the end of its block, already added to `total`. */
static void on_start(unsigned int cpu, void *left)
{
    (void)cpu;
    if (!region_open) {
        region_open = 1;
        open_at = total - (uint64_t)(uintptr_t)left;
    }
}

static void on_stop(unsigned int cpu, void *left)
{
    (void)cpu;
    if (region_open) {
        uint64_t n = total - (uint64_t)(uintptr_t)left - open_at;
        region += n;
        if (window_counts && windows < MAX_WINDOWS)
            window_counts[windows] = n;
        windows++;
        region_open = 0;
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &total, n);
    if (dump_tbs) {
        struct tb_rec *r = calloc(1, sizeof *r);
        if (r) {
            r->vaddr = qemu_plugin_tb_vaddr(tb);
            r->n = n;
            r->next = tbs;
            tbs = r;
            qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &r->execs, 1);
        }
    }
    if (start_pc == UINT64_MAX && stop_pc == UINT64_MAX)
        return;
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        void *left = (void *)(uintptr_t)(n - i);
        if (pc == start_pc)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_start, QEMU_PLUGIN_CB_NO_REGS, left);
        if (pc == stop_pc)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_stop, QEMU_PLUGIN_CB_NO_REGS, left);
    }
}

static void at_exit(qemu_plugin_id_t id, void *unused)
{
    (void)id;
    (void)unused;
    FILE *f = out_path ? fopen(out_path, "w") : NULL;
    if (!f)
        f = stderr;
    fprintf(f, "{\"insns\": %" PRIu64 ", \"region_insns\": %" PRIu64 ", \"region_windows\": %" PRIu64, total,
            region, windows);
    if (window_counts) {
        fputs(", \"windows\": [", f);
        for (uint64_t i = 0; i < windows && i < MAX_WINDOWS; i++)
            fprintf(f, "%s%" PRIu64, i ? ", " : "", window_counts[i]);
        fputc(']', f);
    }
    if (dump_tbs) {
        fputs(", \"tbs\": [", f);
        for (struct tb_rec *r = tbs; r; r = r->next)
            fprintf(f, "%s[%" PRIu64 ", %" PRIu64 ", %" PRIu64 "]", r == tbs ? "" : ", ", r->vaddr, r->n, r->execs);
        fputc(']', f);
    }
    fputs("}\n", f);
    if (f != stderr)
        fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *key = argv[i], *val = eq + 1;
        if (!strcmp(key, "out"))
            out_path = strdup(val);
        else if (!strcmp(key, "start"))
            start_pc = strtoull(val, NULL, 0) & ~1ull; /* Thumb bit */
        else if (!strcmp(key, "stop"))
            stop_pc = strtoull(val, NULL, 0) & ~1ull;
        else if (!strcmp(key, "tbs"))
            dump_tbs = !strcmp(val, "on");
        else if (!strcmp(key, "windows"))
            dump_windows = !strcmp(val, "on");
        else {
            fprintf(stderr, "insncount: unknown argument '%s'\n", key);
            return -1;
        }
    }
    if (dump_windows)
        window_counts = calloc(MAX_WINDOWS, sizeof *window_counts);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
