/* host_main.c - host runner of a TinyStudio C library: raw int8 inputs on stdin, raw int8 outputs on stdout.
 *
 * Reads @UPPER@_INPUT_SIZE bytes per inference (all graph inputs back to back), runs the model, writes
 * @UPPER@_OUTPUT_SIZE bytes, until end of input. Exit status: 0 ok, 2 truncated input, 3-5 library/IO errors.
 * Build: cc -std=c99 -O2 host_main.c @NAME@.c @NAME@_weights.c @NAME@_io.c ts_*.c -o @NAME@_host
 */
#include <stdio.h>

#include "@NAME@.h"

int main(void)
{
    static int8_t input[@UPPER@_INPUT_SIZE];
    static int8_t output[@UPPER@_OUTPUT_SIZE];
    if (@NAME@_init() != 0) {
        fprintf(stderr, "@NAME@_init failed\n");
        return 3;
    }
    for (;;) {
        const size_t got = fread(input, 1, sizeof input, stdin);
        if (got == 0 && feof(stdin)) {
            return 0;
        }
        if (got != sizeof input) {
            fprintf(stderr, "truncated input: %lu of %lu bytes\n", (unsigned long)got, (unsigned long)sizeof input);
            return 2;
        }
        if (@NAME@_run(input, output) != 0) {
            fprintf(stderr, "@NAME@_run failed\n");
            return 4;
        }
        if (fwrite(output, 1, sizeof output, stdout) != sizeof output) {
            return 5;
        }
    }
}
