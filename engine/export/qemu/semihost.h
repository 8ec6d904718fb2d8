/* Arm semihosting (BKPT 0xAB) for programs run under QEMU: console output, host files, exit code. */
#ifndef TS_SEMIHOST_H
#define TS_SEMIHOST_H
#include <stdint.h>

enum { TS_SH_READ_BINARY = 1, TS_SH_WRITE_BINARY = 5 };   /* SYS_OPEN modes "rb" and "wb" */

int ts_sh_open(const char *path, int mode);                 /* host file handle, or -1 */
int ts_sh_read(int handle, void *buf, int len);             /* bytes read (0 at end of file) */
int ts_sh_write(int handle, const void *buf, int len);      /* bytes written */
int ts_sh_close(int handle);
void ts_puts(const char *s);                                /* to the host's stdout */
void ts_put_u32(const char *label, uint32_t value);         /* "label=value\n" without printf */
void ts_fault(uint32_t exception) __attribute__((noreturn));
#endif
