#ifndef DDPM_CPNG_SHIM_H
#define DDPM_CPNG_SHIM_H
#include <png.h>
#endif
