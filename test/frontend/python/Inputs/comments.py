# header comment
def f(a):
    return a  # trailing
