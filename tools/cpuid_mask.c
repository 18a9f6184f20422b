/* Hide instruction-set extensions from CPUID, for measuring and testing what a CPU without them runs.
 *
 * Loaded with LD_PRELOAD, it turns on the kernel's CPUID faulting for the process (arch_prctl
 * ARCH_SET_CPUID; needs the CPU flag "cpuid_fault", which KVM guests have), so every CPUID
 * instruction traps to the SIGSEGV handler below. The handler runs the real CPUID, clears the bits of
 * the profile named by TRTFORGE_CPUID_MASK, and resumes after the instruction. Libraries that pick their
 * kernels from CPUID (ONNX Runtime's MLAS, oneDNN/OpenVINO, NumPy) then pick the ones such a CPU has;
 * the instructions they run execute natively, so timings are those of this core running that code.
 *
 *   avx2         AVX2/FMA only: no AVX-512, no VNNI (AVX-512 or AVX), no AMX, no AVX512-BF16/FP16
 *   avx512_core  AVX-512 F/CD/BW/DQ/VL, without VNNI, BF16, FP16, AMX (a Skylake-SP)
 *   none         nothing hidden: the control, to see what the trapping itself costs
 *
 * With TRTFORGE_CPUID_MASK_VERBOSE=1 the process prints, at exit, how many CPUIDs it trapped.
 *
 * The faulting is per thread and inherited by threads created later; exec turns it off (the preload
 * turns it on again in the new program). Nothing else in the process may handle SIGSEGV
 * (e.g. Python's faulthandler): the handler would not be reached.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define BIT(n) (1u << (n))

/* CPUID.(EAX=7,ECX=0) */
#define EBX_AVX512 (BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31))
#define ECX_AVX512 (BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14))
#define ECX_AVX512_VNNI BIT(11)
#define EDX_AVX512 (BIT(2) | BIT(3) | BIT(8) | BIT(23))
#define EDX_AMX_AND_FP16 (BIT(22) | BIT(23) | BIT(24) | BIT(25))
/* CPUID.(EAX=7,ECX=1): AVX-VNNI, AVX512-BF16 */
#define EAX1_VNNI_BF16 (BIT(4) | BIT(5))

struct mask {
    unsigned ebx7, ecx7, edx7, eax7_1;
};

static struct mask hidden;
static volatile unsigned long trapped;

static long set_cpuid(int enabled) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled); }

static void on_segv(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)info;
    greg_t *reg = ((ucontext_t *)context)->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)reg[REG_RIP];
    if (ip[0] != 0x0f || ip[1] != 0xa2) { /* a real fault: let it kill the process as usual */
        signal(SIGSEGV, SIG_DFL);
        return;
    }
    trapped++;
    unsigned leaf = (unsigned)reg[REG_RAX], sub = (unsigned)reg[REG_RCX], a, b, c, d;
    set_cpuid(1);
    __cpuid_count(leaf, sub, a, b, c, d);
    set_cpuid(0);
    if (leaf == 7 && sub == 0) {
        b &= ~hidden.ebx7;
        c &= ~hidden.ecx7;
        d &= ~hidden.edx7;
    } else if (leaf == 7 && sub == 1) {
        a &= ~hidden.eax7_1;
    }
    reg[REG_RAX] = a;
    reg[REG_RBX] = b;
    reg[REG_RCX] = c;
    reg[REG_RDX] = d;
    reg[REG_RIP] += 2;
}

static void report(void) { fprintf(stderr, "cpuid_mask: %lu CPUID instructions trapped\n", trapped); }

__attribute__((constructor)) static void cpuid_mask_init(void) {
    const char *profile = getenv("TRTFORGE_CPUID_MASK");
    if (profile == NULL || strcmp(profile, "avx2") == 0) {
        hidden = (struct mask){EBX_AVX512, ECX_AVX512, EDX_AVX512 | EDX_AMX_AND_FP16, EAX1_VNNI_BF16};
    } else if (strcmp(profile, "avx512_core") == 0) {
        hidden = (struct mask){0, ECX_AVX512_VNNI, EDX_AMX_AND_FP16, EAX1_VNNI_BF16};
    } else if (strcmp(profile, "none") == 0) {
        hidden = (struct mask){0, 0, 0, 0};
    } else {
        fprintf(stderr, "cpuid_mask: unknown TRTFORGE_CPUID_MASK=%s (use avx2, avx512_core or none)\n", profile);
        _exit(3);
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &action, NULL);
    const char *verbose = getenv("TRTFORGE_CPUID_MASK_VERBOSE");
    if (verbose != NULL && strcmp(verbose, "1") == 0) {
        atexit(report);
    }
    if (set_cpuid(0) != 0) {
        perror("cpuid_mask: arch_prctl(ARCH_SET_CPUID) (this CPU or kernel has no CPUID faulting)");
        _exit(3);
    }
}
