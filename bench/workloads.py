"""The benchmark's job functions (shipped by value: workers run in an empty directory)."""


def noop(x):
    return x


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


def payload_len(data):
    return len(data)
