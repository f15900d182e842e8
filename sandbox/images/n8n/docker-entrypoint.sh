#!/bin/sh
# As n8n's own image (n8n-io/n8n docker/images/n8n/docker-entrypoint.sh): trust extra CA
# certificates mounted at /opt/custom-certificates, then run n8n with the arguments given.
if [ -d /opt/custom-certificates ]; then
  echo "Trusting custom certificates from /opt/custom-certificates."
  export NODE_OPTIONS="--use-openssl-ca $NODE_OPTIONS"
  export SSL_CERT_DIR=/opt/custom-certificates
  c_rehash /opt/custom-certificates
fi

if [ "$#" -gt 0 ]; then
  # Got started with arguments
  exec n8n "$@"
else
  # Got started without arguments
  exec n8n
fi
