#!/bin/sh
# IJP terminal (an interactive job): an xterm in the job's work directory, with the job's
# environment. The portal's arguments become environment variables, so that programs run
# in the terminal can reach the catalog as the user (ijpweb.jobscript reads
# $IJP_SESSION_ID; IJP_ICAT_URL and IJP_IDS_URL are the bare URLs its --icatUrl and
# --idsUrl take). Nothing here goes through a shell's word splitting of user values.
for arg in "$@"; do
  case $arg in
    --icatUrl=*) IJP_ICAT_URL=${arg#*=}; export IJP_ICAT_URL ;;
    --idsUrl=*) IJP_IDS_URL=${arg#*=}; export IJP_IDS_URL ;;
    --sessionId=*) IJP_SESSION_ID=${arg#*=}; export IJP_SESSION_ID ;;
    --datasetIds=*) IJP_DATASET_IDS=${arg#*=}; export IJP_DATASET_IDS ;;
    --datafileIds=*) IJP_DATAFILE_IDS=${arg#*=}; export IJP_DATAFILE_IDS ;;
  esac
done
# the job's user may have no login shell (nobody's is nologin): say which one to run
if [ -x /bin/bash ]; then SHELL=/bin/bash; else SHELL=/bin/sh; fi
export SHELL
# as many 10x20 characters (xfonts-base) as the display holds
cols=100 rows=32
if command -v xdpyinfo >/dev/null 2>&1; then
  size=$(xdpyinfo 2>/dev/null | sed -n 's/^ *dimensions: *\([0-9]*\)x\([0-9]*\) pixels.*/\1 \2/p')
  if [ -n "$size" ]; then
    set -- $size
    cols=$(( ($1 - 24) / 10 )) rows=$(( ($2 - 8) / 20 ))
    [ "$cols" -ge 40 ] || cols=40
    [ "$rows" -ge 10 ] || rows=10
  fi
fi
exec xterm -T "IJP terminal" -n "IJP terminal" -fn 10x20 -bg white -fg black -cr black \
  -sb -sl 5000 -geometry "${cols}x${rows}+0+0" -e "$SHELL"
