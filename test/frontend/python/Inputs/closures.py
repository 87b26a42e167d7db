def counter():
    n = 0
    def inc():
        nonlocal n
        n += 1
        return n
    return inc, n
scale = lambda v, k=2: v * k
evens = [y for x in range(9) if (y := x * 2) > 4]
