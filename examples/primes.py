"""The PiCloud tutorial's prime-sum example, on the embedded simulator (no server).

    python examples/primes.py            # simulator (the default)
    PICLOUD_SERVER_URL=redis://... PICLOUD_API_KEY=... PICLOUD_SIGNING_KEY=... \
        python examples/primes.py        # a cluster of Celery workers
"""

import time

import cloud


def isprime(n):
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


def sum_primes(n):
    return sum(x for x in range(2, n) if isprime(x))


def main() -> None:
    print("simulated:", cloud.is_simulated(), cloud.connection_info())
    numbers = range(30000, 30016)

    start = time.perf_counter()
    serial = list(map(sum_primes, numbers))
    serial_s = time.perf_counter() - start

    start = time.perf_counter()
    jids = cloud.map(sum_primes, numbers, _label="primes")
    parallel = cloud.result(jids)
    cloud_s = time.perf_counter() - start

    assert parallel == serial
    print(f"jobs {jids[0]}..{jids[-1]}: {cloud.status(jids[0])}")
    print(f"serial   {serial_s * 1000:7.1f} ms")
    print(f"cloud    {cloud_s * 1000:7.1f} ms  (speed-up {serial_s / cloud_s:.2f}x)")
    print("first results:", parallel[:3])
    cloud.close()


if __name__ == "__main__":
    main()
