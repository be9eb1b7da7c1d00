print("vsnfs-mount")
