count = 0
def reset():
    global count
    count = 0
def bump(step):
    global count
    count += step
    return count
total = count
