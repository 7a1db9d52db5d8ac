/* control.c - (being written) */
#include "control.h"
