/* http.h - (being written) */
#ifndef HEPROUTER_HTTP_H
#define HEPROUTER_HTTP_H
#endif
