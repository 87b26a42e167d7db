total = 1
total += total
