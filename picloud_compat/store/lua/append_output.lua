-- Stream a running job's output so info() shows it live; keeps only the tail.
-- ARGV: 1 tenant, 2 jid, 3 output limit, 4 stdout, 5 stderr.
local t, jid, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
append_capped(K.stdout(t, jid), ARGV[4], limit, nil)
append_capped(K.stderr(t, jid), ARGV[5], limit, nil)
return 'OK'
