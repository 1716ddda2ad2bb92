    [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
