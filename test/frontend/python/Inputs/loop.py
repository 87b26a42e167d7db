def run(items):
    acc = 0
    last = None
    for item in items:
        if last is not None:
            acc = acc + last
        last = item
    else:
        done = acc
    return acc, last, done
