size = 1
class Box:
    size = 2
    double = size * 2
    def area(self):
        return size * self.size
    items = [size for _ in range(3)]
