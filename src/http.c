/* http.c - (being written) */
#include "http.h"
