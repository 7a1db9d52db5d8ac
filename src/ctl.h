/* ctl.h - (being written) */
#ifndef HEPROUTER_CTL_H
#define HEPROUTER_CTL_H
#endif
