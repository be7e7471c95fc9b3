/* runtime/ane/sim/msgsend.S -- the double's objc_msgSend: a trampoline with
 * the real calling convention.  Like Apple's, it takes (self, _cmd, ...) in
 * the argument registers of whatever C function type the caller cast it to,
 * looks the implementation up (mil_ane_sim_lookup(self, _cmd), C) and jumps
 * to it with every argument register restored, so the implementation
 * receives the caller's arguments exactly as the callee of a direct call
 * would. */

#if defined(__x86_64__)
    .text
    .globl mil_ane_sim_msgsend
    .type mil_ane_sim_msgsend, @function
mil_ane_sim_msgsend:
    pushq %rbp
    movq %rsp, %rbp
    subq $192, %rsp
    movq %rdi, 0(%rsp)
    movq %rsi, 8(%rsp)
    movq %rdx, 16(%rsp)
    movq %rcx, 24(%rsp)
    movq %r8, 32(%rsp)
    movq %r9, 40(%rsp)
    movq %rax, 48(%rsp)
    movdqu %xmm0, 64(%rsp)
    movdqu %xmm1, 80(%rsp)
    movdqu %xmm2, 96(%rsp)
    movdqu %xmm3, 112(%rsp)
    movdqu %xmm4, 128(%rsp)
    movdqu %xmm5, 144(%rsp)
    movdqu %xmm6, 160(%rsp)
    movdqu %xmm7, 176(%rsp)
    call mil_ane_sim_lookup@PLT
    movq %rax, %r11
    movq 0(%rsp), %rdi
    movq 8(%rsp), %rsi
    movq 16(%rsp), %rdx
    movq 24(%rsp), %rcx
    movq 32(%rsp), %r8
    movq 40(%rsp), %r9
    movq 48(%rsp), %rax
    movdqu 64(%rsp), %xmm0
    movdqu 80(%rsp), %xmm1
    movdqu 96(%rsp), %xmm2
    movdqu 112(%rsp), %xmm3
    movdqu 128(%rsp), %xmm4
    movdqu 144(%rsp), %xmm5
    movdqu 160(%rsp), %xmm6
    movdqu 176(%rsp), %xmm7
    movq %rbp, %rsp
    popq %rbp
    jmpq *%r11
    .size mil_ane_sim_msgsend, .-mil_ane_sim_msgsend
#elif defined(__aarch64__)
    .text
    .globl mil_ane_sim_msgsend
    .type mil_ane_sim_msgsend, %function
mil_ane_sim_msgsend:
    stp x29, x30, [sp, #-224]!
    mov x29, sp
    stp x0, x1, [sp, #16]
    stp x2, x3, [sp, #32]
    stp x4, x5, [sp, #48]
    stp x6, x7, [sp, #64]
    str x8, [sp, #80]
    stp q0, q1, [sp, #96]
    stp q2, q3, [sp, #128]
    stp q4, q5, [sp, #160]
    stp q6, q7, [sp, #192]
    bl mil_ane_sim_lookup
    mov x16, x0
    ldp x0, x1, [sp, #16]
    ldp x2, x3, [sp, #32]
    ldp x4, x5, [sp, #48]
    ldp x6, x7, [sp, #64]
    ldr x8, [sp, #80]
    ldp q0, q1, [sp, #96]
    ldp q2, q3, [sp, #128]
    ldp q4, q5, [sp, #160]
    ldp q6, q7, [sp, #192]
    ldp x29, x30, [sp], #224
    br x16
    .size mil_ane_sim_msgsend, .-mil_ane_sim_msgsend
#else
#error "the ANE double's objc_msgSend trampoline supports x86-64 and arm64"
#endif

#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack, "", %progbits
#endif
