/*
 * insn-count: a qemu TCG plugin for `bun run bench:arm` that counts the guest instructions
 * each vCPU executes. Under qemu-user a vCPU is a guest thread (vCPU 0 is the main thread;
 * an index freed by an exited thread can be reused by a later one).
 *
 * Counting: when a translation block is translated, a callback is attached that adds the
 * block's instruction count to the executing vCPU's counter each time the block runs. Each
 * guest thread only writes its own counter, so no locking is needed. The same callback counts
 * the block's SDOT instructions (vector and by-element forms), which shows whether the JIT
 * lowered WASM's relaxed i8 dot product to the ARMv8.2 dot-product instruction.
 *
 * Marks: a guest `close(fd)` with fd in [MARK_BASE, MARK_BASE + MARK_SPAN) is a marker (no
 * such descriptor exists, so the call only fails with EBADF). At each one the plugin records
 * the marker number, the calling vCPU, that vCPU's instruction and SDOT counts, and the
 * instructions of all vCPUs together, so a driver can bracket a region (one decoded token,
 * one kernel call) and get its exact count in a single run.
 *
 * Output (at exit, to out=<file>, else stderr), one record per line:
 *   vcpu <index> <instructions> <sdot instructions>
 *   mark <number> <vcpu> <instructions of that vcpu so far> <its sdots> <all vcpus' instructions>
 *
 * Built at run time against qemu 7.2's plugin API (version 1); the distribution ships no
 * qemu-plugin.h, so the handful of entry points used are declared here with their ABI types.
 *   gcc -O2 -shared -fPIC -o insn-count.so insn-count.c
 *   qemu-aarch64 -plugin ./insn-count.so,out=counts.txt ./program
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- The subset of qemu's plugin API (include/qemu/qemu-plugin.h, API version 1). ---- */

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;

typedef struct {
  const char *target_name;
  struct {
    int min;
    int cur;
  } version;
  bool system_emulation;
  /* system-emulation fields follow; not read */
} qemu_info_t;

enum qemu_plugin_cb_flags {
  QEMU_PLUGIN_CB_NO_REGS,
  QEMU_PLUGIN_CB_R_REGS,
  QEMU_PLUGIN_CB_RW_REGS,
};

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                                              uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                                              uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                                 enum qemu_plugin_cb_flags flags, void *userdata);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);

#define PLUGIN_EXPORT __attribute__((visibility("default")))
PLUGIN_EXPORT int qemu_plugin_version = 1;

/* ---- State. ---- */

/* vCPU slots; a thread beyond the last one is counted in the last slot (reported as such). */
#define MAX_VCPUS 1024
/* close(2) descriptors that are markers: far above any real descriptor (int, positive). */
#define MARK_BASE 0x63730000L
#define MARK_SPAN 65536L
#define MAX_MARKS 65536
/* aarch64 close(2) */
#define SYS_CLOSE 57

static uint64_t counts[MAX_VCPUS];
static uint64_t sdots[MAX_VCPUS];
static struct mark {
  uint32_t number;
  uint32_t vcpu;
  uint64_t count;
  uint64_t sdot;
  uint64_t all;
} marks[MAX_MARKS];
static unsigned n_marks;
static unsigned dropped_marks;
static const char *out_path;

static unsigned slot(unsigned vcpu) { return vcpu < MAX_VCPUS ? vcpu : MAX_VCPUS - 1; }

/* ---- Callbacks. ---- */

/* The block's counts travel in the callback's user data: instructions in the low 32 bits,
 * SDOTs in the high 32 (a block holds at most a few hundred instructions). */
static void on_tb_exec(unsigned int vcpu, void *packed) {
  uint64_t p = (uintptr_t)packed;
  counts[slot(vcpu)] += p & 0xffffffffu;
  sdots[slot(vcpu)] += p >> 32;
}

/* SDOT (vector), Vd.4S += Vn.16B . Vm.16B (Q = 1) or the 64-bit form: 0 Q 0 01110 10 0 Rm 100101 Rn Rd. */
static int is_sdot(uint32_t w) {
  return (w & 0xBFE0FC00u) == 0x0E809400u     /* vector */
         || (w & 0xBFC0F400u) == 0x0F80E000u; /* by element: 0 Q 0 01111 10 L M Rm 1110 H 0 Rn Rd */
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  size_t n = qemu_plugin_tb_n_insns(tb);
  uint64_t sdot = 0;
  for (size_t i = 0; i < n; i++) {
    const struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    if (qemu_plugin_insn_size(insn) != 4) continue;
    uint32_t w;
    memcpy(&w, qemu_plugin_insn_data(insn), 4); /* little-endian guest and host */
    sdot += (uint64_t)is_sdot(w);
  }
  qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS, (void *)(uintptr_t)(n | sdot << 32));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8) {
  (void)id, (void)a2, (void)a3, (void)a4, (void)a5, (void)a6, (void)a7, (void)a8;
  int64_t fd = (int32_t)a1;
  if (num != SYS_CLOSE || fd < MARK_BASE || fd >= MARK_BASE + MARK_SPAN) return;
  /* Marks come from one thread at a time in practice (the driver's main thread); a racing
   * second thread could at worst overwrite a slot, never write out of bounds. */
  unsigned i = __atomic_fetch_add(&n_marks, 1, __ATOMIC_RELAXED);
  if (i >= MAX_MARKS) {
    __atomic_fetch_add(&dropped_marks, 1, __ATOMIC_RELAXED);
    return;
  }
  /* Other threads' counters are read while they run: exact for this thread, within a block
   * or so for the others (aligned 64-bit loads never tear on a 64-bit host). */
  uint64_t all = 0;
  for (unsigned v = 0; v < MAX_VCPUS; v++) all += counts[v];
  marks[i] = (struct mark){(uint32_t)(fd - MARK_BASE), vcpu, counts[slot(vcpu)], sdots[slot(vcpu)], all};
}

static void on_at_exit(qemu_plugin_id_t id, void *userdata) {
  (void)id, (void)userdata;
  FILE *f = out_path != NULL ? fopen(out_path, "w") : NULL;
  if (f == NULL) f = stderr;
  for (unsigned v = 0; v < MAX_VCPUS; v++) {
    if (counts[v] == 0) continue;
    fprintf(f, "vcpu %u %llu %llu\n", v, (unsigned long long)counts[v], (unsigned long long)sdots[v]);
  }
  unsigned n = n_marks < MAX_MARKS ? n_marks : MAX_MARKS;
  for (unsigned i = 0; i < n; i++) {
    const struct mark *m = &marks[i];
    fprintf(f, "mark %u %u %llu %llu %llu\n", m->number, m->vcpu, (unsigned long long)m->count, (unsigned long long)m->sdot,
            (unsigned long long)m->all);
  }
  if (dropped_marks != 0) fprintf(f, "dropped-marks %u\n", dropped_marks);
  if (f != stderr) fclose(f);
}

PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
  (void)info;
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], "out=", 4) == 0) {
      out_path = argv[i] + 4;
    } else {
      fprintf(stderr, "insn-count: unknown argument \"%s\" (takes out=<file>)\n", argv[i]);
      return -1;
    }
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
  qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
  qemu_plugin_register_atexit_cb(id, on_at_exit, NULL);
  return 0;
}
