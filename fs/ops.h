/* fs/ops.h — the FUSE operation table (fs/ops.c). */
#ifndef LAKEFS_FS_OPS_H
#define LAKEFS_FS_OPS_H

#include <fuse_lowlevel.h>

extern const struct fuse_lowlevel_ops lfs_ops;

#endif
