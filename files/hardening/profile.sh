# Managed by the platform deploy: an idle login shell is closed after 15 minutes; no core dumps.
TMOUT=900
readonly TMOUT
export TMOUT
ulimit -c 0
