from setuptools import Extension, setup

setup(ext_modules=[Extension("keel_fixcodec._fixcodec", ["keel_fixcodec/_fixcodec.c"],
                             extra_compile_args=["-O2"])])
