/* host_main_float.c - host runner of the float API of a TinyStudio C library (a model that takes and returns
 * float32): raw float32 inputs on stdin, raw float32 outputs on stdout.
 *
 * Reads @UPPER@_FLOAT_INPUT_COUNT floats per inference (all inputs back to back), calls @NAME@_run_float,
 * writes @UPPER@_FLOAT_OUTPUT_COUNT floats, until end of input. Exit status: 0 ok, 2 truncated input,
 * 3-5 library/IO errors.
 */
#include <stdio.h>

#include "@NAME@.h"

int main(void)
{
    static float input[@UPPER@_FLOAT_INPUT_COUNT];
    static float output[@UPPER@_FLOAT_OUTPUT_COUNT];
    if (@NAME@_init() != 0) {
        fprintf(stderr, "@NAME@_init failed\n");
        return 3;
    }
    for (;;) {
        const size_t got = fread(input, sizeof input[0], @UPPER@_FLOAT_INPUT_COUNT, stdin);
        if (got == 0 && feof(stdin)) {
            return 0;
        }
        if (got != @UPPER@_FLOAT_INPUT_COUNT) {
            fprintf(stderr, "truncated input: %lu of %lu floats\n", (unsigned long)got,
                    (unsigned long)@UPPER@_FLOAT_INPUT_COUNT);
            return 2;
        }
        if (@NAME@_run_float(input, output) != 0) {
            fprintf(stderr, "@NAME@_run_float failed\n");
            return 4;
        }
        if (fwrite(output, sizeof output[0], @UPPER@_FLOAT_OUTPUT_COUNT, stdout) != @UPPER@_FLOAT_OUTPUT_COUNT) {
            return 5;
        }
    }
}
