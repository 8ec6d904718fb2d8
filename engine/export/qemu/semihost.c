/* Semihosting calls for bare-metal programs under QEMU (-semihosting-config enable=on,target=native) and
 * the newlib syscalls a program may pull in (_write/_exit over semihosting, the rest as harmless stubs).
 * Exit codes pass through to QEMU's exit status (SYS_EXIT_EXTENDED); a CPU fault exits with 128 + the
 * exception number so the host can tell a crash from a wrong result. */
#include "semihost.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE 0x05
#define SYS_READ 0x06
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define ADP_STOPPED_RUNTIME_ERROR 0x20023

static int sh_call(int op, void *arg)
{
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

int ts_sh_open(const char *path, int mode)
{
    uint32_t blk[3] = {(uint32_t)(uintptr_t)path, (uint32_t)mode, (uint32_t)strlen(path)};
    return sh_call(SYS_OPEN, blk);
}

int ts_sh_read(int handle, void *buf, int len)
{
    uint32_t blk[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, (uint32_t)len};
    return len - sh_call(SYS_READ, blk); /* the call returns the number of bytes NOT read */
}

int ts_sh_write(int handle, const void *buf, int len)
{
    uint32_t blk[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, (uint32_t)len};
    return len - sh_call(SYS_WRITE, blk);
}

int ts_sh_close(int handle)
{
    uint32_t blk[1] = {(uint32_t)handle};
    return sh_call(SYS_CLOSE, blk);
}

static int console[3] = {-1, -1, -1};

static int console_handle(int fd)
{
    int i = fd == 2 ? 2 : 1;
    if (console[i] < 0)
        console[i] = ts_sh_open(":tt", i == 2 ? 8 : 4); /* ":tt" "a" = stderr, "w" = stdout */
    return console[i];
}

int _write(int fd, const char *buf, int len)
{
    return ts_sh_write(console_handle(fd), buf, len);
}

void ts_puts(const char *s)
{
    _write(1, s, (int)strlen(s));
}

void ts_put_u32(const char *label, uint32_t value)
{
    char digits[12];
    int n = 0;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value);
    ts_puts(label);
    _write(1, "=", 1);
    _write(1, digits + sizeof digits - n, n);
    _write(1, "\n", 1);
}

__attribute__((noreturn)) void _exit(int status)
{
    uint32_t blk[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)status};
    sh_call(SYS_EXIT_EXTENDED, blk);
    /* Hosts without the extended call: plain SYS_EXIT only tells success from failure. */
    sh_call(SYS_EXIT, (void *)(uintptr_t)(status == 0 ? ADP_STOPPED_APPLICATION_EXIT : ADP_STOPPED_RUNTIME_ERROR));
    for (;;) {
    }
}

__attribute__((noreturn)) void ts_fault(uint32_t exception)
{
    ts_put_u32("*** CPU fault, exception", exception);
    _exit(128 + (int)exception);
}

/* newlib stubs (with --specs=nosys.specs) so nothing warns at link time. */
int _close(int fd) { (void)fd; return -1; }
int _fstat(int fd, struct stat *st) { (void)fd; st->st_mode = S_IFCHR; return 0; }
int _isatty(int fd) { (void)fd; return 1; }
int _lseek(int fd, int off, int whence) { (void)fd; (void)off; (void)whence; return 0; }
int _read(int fd, char *buf, int len) { (void)fd; (void)buf; (void)len; return 0; }
int _getpid(void) { return 1; }
int _kill(int pid, int sig) { (void)pid; (void)sig; errno = EINVAL; return -1; }
/* -nostartfiles drops crti.o/crtn.o, which __libc_init_array still calls. */
void _init(void) {}
void _fini(void) {}
