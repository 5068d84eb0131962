-- Stream a running job's output so info() shows it live; keeps only the tail.
-- A: tenant, jid, limit, stdout, stderr.
append_capped(K.stdout(A.tenant, A.jid), A.stdout, A.limit, nil)
append_capped(K.stderr(A.tenant, A.jid), A.stderr, A.limit, nil)
return 'OK'
