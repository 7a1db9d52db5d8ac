/* ctl.c - (being written) */
#include "ctl.h"
