/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wire constants shared by the launch helper (wire_linux.c) and the
 * supervisor side (wire.go). cgo_linux.go checks at compile time that
 * wire.go's copies equal these, so the two ends cannot drift apart.
 *
 * Every integer on the wire is little-endian. A string is a u32 length,
 * that many bytes (none of them NUL), then one NUL byte, so that the
 * helper can use it in place as a C string.
 *
 * Spec (supervisor -> helper, on the spec pipe), then EOF:
 *   u32 UDSV_SPEC_MAGIC, u32 length of the rest
 *   u32 parent pid, u32 uid, u32 gid, u32 umask, u32 number of sockets
 *   u32 flags (UDSV_FLAG_*; the helper refuses a bit it does not know)
 *   str path, str dir
 *   u32 n, n x str argv
 *   u32 n, n x str env (KEY=VALUE)
 *   u32 n, n x u32 supplementary gid
 *   u32 n, n x (u32 resource, u64 soft, u64 hard)
 *   u32 n, n x u32 capability
 *
 * Failure report (helper -> supervisor, on the error pipe), then exit 127:
 *   u32 UDSV_REPORT_MAGIC, u32 errno (0: none), str op, str path, str msg
 */
#ifndef UDSVISOR_WIRE_LINUX_H
#define UDSVISOR_WIRE_LINUX_H

/* privdrop.helperArg, and the variables naming the two pipes' fds (wire.go) */
#define UDSV_HELPER_ARG "__udsvisor_launch"
#define UDSV_ENV_SPEC_FD "_UDSVISOR_SPEC_FD"
#define UDSV_ENV_ERR_FD "_UDSVISOR_ERR_FD"

#define UDSV_SPEC_MAGIC 0x324c4455u   /* "UDL2", since the flags word */
#define UDSV_REPORT_MAGIC 0x31524455u /* "UDR1" */

/* The spec's flags word. A bit the helper does not know is refused, not
 * ignored: a supervisor that asks for an isolation step must never get a
 * launch without it. */
#define UDSV_FLAG_PRIVATE_NETWORK 0x1u /* Spec.PrivateNetwork */
#define UDSV_FLAGS_KNOWN UDSV_FLAG_PRIVATE_NETWORK

/*
 * Bounds on what crosses the pipes. Both ends are udsvisor, but the
 * helper must not trust a length it reads, and the supervisor must not
 * buffer a misbehaving helper's report without limit.
 */
#define UDSV_MAX_SPEC_BYTES (4 << 20)
#define UDSV_MAX_ERR_BYTES (64 << 10)
#define UDSV_MAX_GROUPS 65536 /* the kernel's NGROUPS_MAX */
#define UDSV_MAX_RLIMITS 16   /* RLIM_NLIMITS: RLIMIT_CPU..RLIMIT_RTTIME */
#define UDSV_MAX_CAPS 64      /* two 32-bit capability words */

#endif
