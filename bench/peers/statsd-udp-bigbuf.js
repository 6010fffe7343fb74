/*
 * statsd-udp-bigbuf.js — statsd's own UDP server (servers/udp.js) plus the
 * one tuning a statsd user finds first: a larger socket receive buffer
 * (config.recvBufferSize, default 8 MiB; the kernel caps it at
 * net.core.rmem_max, which bench/compare raises for the run and restores).
 * Stock statsd keeps the kernel default (net.core.rmem_default).
 */
'use strict';
const dgram = require('dgram');

exports.start = function (config, callback) {
  const udp_version = config.address_ipv6 ? 'udp6' : 'udp4';
  const server = dgram.createSocket(udp_version, callback);
  const size = config.recvBufferSize || 8 * 1024 * 1024;
  server.on('listening', function () {
    server.setRecvBufferSize(size);
  });
  server.bind(config.port || 8125, config.address || undefined);
  this.server = server;
  return true;
};
