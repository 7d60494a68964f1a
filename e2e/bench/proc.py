"""Process figures from /proc: `cpu PID` (user+system CPU seconds), `rss PID` and
`peak PID` (resident and peak resident memory, MiB)."""
import os
import sys

what, pid = sys.argv[1], sys.argv[2]
if what == "cpu":
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    print((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
else:
    key = "VmRSS:" if what == "rss" else "VmHWM:"
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key):
            print(round(int(line.split()[1]) / 1024, 1))
