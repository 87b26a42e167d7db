x = 1
def f(x):
    def g():
        x = 2
        return x
    return x + g()
print(x)
