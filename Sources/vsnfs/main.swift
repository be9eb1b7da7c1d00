print("vsnfs")
