import os.path as osp
def load(path, retries):
    data = None
    while retries > 0:
        retries -= 1
        try:
            data = open(osp.join(path)).read()
        except OSError as err:
            data = str(err)
            continue
        break
    if (size := len(data)) > 10:
        data = data[:10]
    with open(path) as fh:
        first = fh.readline()
    del first
    match data.split():
        case [head, *rest]:
            return head, rest, size
    return data
