#ifndef DDPM_CBLAS_SHIM_H
#define DDPM_CBLAS_SHIM_H
#include <cblas.h>
#endif
