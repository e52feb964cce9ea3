#ifndef DDPM_CHDF5_SHIM_H
#define DDPM_CHDF5_SHIM_H
// HDF5 exposes its predefined types and default property lists as macros that expand to
// global variables behind H5open(); Swift cannot import such macros, so each gets a tiny function.
#include <hdf5.h>

static inline hid_t ddpm_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t ddpm_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t ddpm_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t ddpm_h5t_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t ddpm_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t ddpm_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t ddpm_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t ddpm_h5p_link_create(void) { return H5P_LINK_CREATE; }
static inline hid_t ddpm_h5p_file_create(void) { return H5P_FILE_CREATE; }
static inline hid_t ddpm_h5p_group_create(void) { return H5P_GROUP_CREATE; }
static inline hid_t ddpm_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t ddpm_h5s_all(void) { return H5S_ALL; }
static inline unsigned ddpm_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned ddpm_h5f_acc_rdwr(void) { return H5F_ACC_RDWR; }
static inline unsigned ddpm_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned ddpm_h5f_acc_excl(void) { return H5F_ACC_EXCL; }
static inline size_t ddpm_h5t_variable(void) { return H5T_VARIABLE; }

/// A file-access property list with HDF5's own file locking (flock, HDF5 ≥ 1.10.7) turned off; the caller
/// closes it. The package never shares a file being written: writers fill a private temporary file that is
/// renamed (or linked) into place only when complete, so HDF5's locks protect nothing here, and a lock
/// left by any other holder of the same file would only make a complete file unreadable.
static inline hid_t ddpm_h5p_file_access_unlocked(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) { H5Pset_file_locking(fapl, 0, 1); }
    return fapl;
}

/// Turn off HDF5's automatic printing of its error stack; errors become return codes we throw.
static inline void ddpm_h5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/// Iterate the names of a group's links, in name order, via a caller-supplied callback.
typedef void (*ddpm_h5_name_callback)(const char *name, void *context);
static herr_t ddpm_h5_iterate_thunk(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    (void)group; (void)info;
    void **pair = (void **)data;
    ((ddpm_h5_name_callback)pair[0])(name, pair[1]);
    return 0;
}
static inline herr_t ddpm_h5_list_links(hid_t group, ddpm_h5_name_callback callback, void *context) {
    void *pair[2] = { (void *)callback, context };
    hsize_t index = 0;
    return H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &index, ddpm_h5_iterate_thunk, pair);
}
#endif
