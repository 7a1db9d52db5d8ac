/* control.h - (being written) */
#ifndef HEPROUTER_CONTROL_H
#define HEPROUTER_CONTROL_H
#endif
