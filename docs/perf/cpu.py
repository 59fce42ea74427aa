"""CPU seconds a PostgreSQL cluster has used: the postmaster's own and its reaped children's,
plus its live children's (Linux /proc). `python3 cpu.py PGDATA` prints it."""
import os, sys
TCK = os.sysconf('SC_CLK_TCK')
def stat(pid):
    with open(f'/proc/{pid}/stat') as f:
        s = f.read()
    rest = s[s.rindex(')') + 2:].split()
    # fields after ')' start at index 3 (state); utime=14,stime=15,cutime=16,cstime=17 (1-based)
    return [int(x) for x in rest[11:15]], int(rest[1])
def cluster_cpu(datadir):
    pm = int(open(f'{datadir}/postmaster.pid').readline())
    (u, s, cu, cs), _ = stat(pm)
    total = u + s + cu + cs
    for p in os.listdir('/proc'):
        if not p.isdigit() or int(p) == pm:
            continue
        try:
            (u, s, _, _), ppid = stat(int(p))
        except Exception:
            continue
        if ppid == pm:
            total += u + s
    return total / TCK
if __name__ == '__main__':
    print(f'{cluster_cpu(sys.argv[1]):.3f}')
