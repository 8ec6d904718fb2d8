/* Cortex-M startup in C (ARMv6-M to ARMv8.1-M): vector table, FPU/MVE enable, .data copy, .bss zero, main.
 * QEMU and real cores take the initial stack pointer and the reset address from the vector table at the
 * boot address (not from the ELF entry), so the table goes first in flash (section .isr_vector). */
#include <stdint.h>

extern uint32_t __StackTop, __etext, __data_start__, __data_end__, __bss_start__, __bss_end__;
extern int main(void);
extern void exit(int status) __attribute__((noreturn));
extern void __libc_init_array(void);
void ts_fault(uint32_t exception) __attribute__((noreturn));

void Reset_Handler(void) __attribute__((noreturn));
void Fault_Handler(void);

/* The copy loops must not be vectorised: MVE (Cortex-M55) is off until CPACR is written. */
__attribute__((optimize("no-tree-vectorize"), noreturn)) void Reset_Handler(void)
{
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* CP10/CP11 full access (SCB->CPACR), then barriers so the next instruction sees it. */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    const uint32_t *src = &__etext;
    for (uint32_t *dst = &__data_start__; dst < &__data_end__;)
        *dst++ = *src++;
    for (uint32_t *dst = &__bss_start__; dst < &__bss_end__;)
        *dst++ = 0;
    __libc_init_array();
    exit(main());
}

void Fault_Handler(void)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    ts_fault(ipsr & 0x1FFu);
}

typedef void (*vector_t)(void);
__attribute__((section(".isr_vector"), used)) const vector_t ts_vectors[16] = {
    (vector_t)(uintptr_t)&__StackTop, /* 0: initial main stack pointer */
    Reset_Handler,                     /* 1: reset */
    Fault_Handler,                     /* 2: NMI */
    Fault_Handler,                     /* 3: HardFault */
    Fault_Handler,                     /* 4: MemManage */
    Fault_Handler,                     /* 5: BusFault */
    Fault_Handler,                     /* 6: UsageFault */
    Fault_Handler,                     /* 7: SecureFault (ARMv8-M) */
    0, 0, 0,                           /* 8-10: reserved */
    Fault_Handler,                     /* 11: SVCall */
    Fault_Handler,                     /* 12: DebugMonitor */
    0,                                 /* 13: reserved */
    Fault_Handler,                     /* 14: PendSV */
    Fault_Handler,                     /* 15: SysTick */
};
