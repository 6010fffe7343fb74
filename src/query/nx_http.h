/*
 * nx_http.h — nexusd's HTTP API (libmicrohttpd): health, ingest, summary,
 * streams, series, subscribe (SSE), metrics (Prometheus), stats.
 * Reference: docs/api.md.
 */
#ifndef NX_HTTP_H
#define NX_HTTP_H

#include "server/nx_server.h"

typedef struct nx_http nx_http;

/* Serves on listen_fd (a listening TCP socket, handed over: MHD closes it). */
int nx_http_start(nx_server *srv, int listen_fd, nx_http **out);
/* Ends SSE streams, stops accepting, joins the connection threads. */
void nx_http_stop(nx_http *h);

#endif
