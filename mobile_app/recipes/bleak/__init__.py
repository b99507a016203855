"""python-for-android recipe for bleak, pinned to a released version.

Adapted from the recipe bleak ships (bleak/backends/p4android/recipes/bleak, MIT licence),
which builds whatever its default branch holds that day. This one downloads the tagged
release, so two builds of the APK contain the same bleak (the version must match the
desktop's, which ``python -m mobile_app.apk`` checks).

Why a recipe and not a plain requirement: bleak's Android backend needs its two Java classes
(``PythonScanCallback``, ``PythonBluetoothGattCallback``) compiled into the APK. This recipe
copies them into python-for-android's Java class folder after the build; installed as a
plain pip requirement, bleak fails at the first scan with "didn't find class
com.github.hbldh.bleak.PythonScanCallback" (hbldh/bleak#756). The spec also adds them with
``android.add_src``, so either path puts them there.

Only python-for-android imports this file (``p4a.local_recipes`` in buildozer.spec).
"""

from __future__ import annotations

from os.path import exists, join
from typing import Any, ClassVar

import sh
from pythonforandroid.recipe import PythonRecipe
from pythonforandroid.toolchain import info, shprint

_SETUP_PY = """from setuptools import find_packages, setup

setup(
    name="bleak",
    version="{version}",
    packages=find_packages(exclude=("tests", "examples", "docs")),
)
"""


class BleakRecipe(PythonRecipe):
    version = "3.1.0"
    url = "https://github.com/hbldh/bleak/archive/refs/tags/v{version}.tar.gz"
    name = "bleak"
    depends: ClassVar[list[str]] = ["pyjnius"]  # typing_extensions: the spec's requirements
    call_hostpython_via_targetpython = False

    def prepare_build_dir(self, arch: Any) -> None:
        super().prepare_build_dir(arch)
        # bleak builds with a pyproject.toml only; this python-for-android installs recipes
        # with setup.py, so give it a minimal one.
        setup_py = join(self.get_build_dir(arch), "setup.py")
        if not exists(setup_py):
            with open(setup_py, "w", encoding="utf-8") as f:
                f.write(_SETUP_PY.format(version=self.version))

    def get_recipe_env(self, arch: Any = None, with_flags_in_cc: bool = True) -> Any:
        env = super().get_recipe_env(arch, with_flags_in_cc)
        env["PYJNIUS_PACKAGES"] = self.ctx.get_site_packages_dir(arch)
        return env

    def postbuild_arch(self, arch: Any) -> None:
        super().postbuild_arch(arch)
        info("Copying bleak's Java classes")
        java = join(self.get_build_dir(arch.arch), "bleak", "backends", "p4android", "java", ".")
        shprint(sh.cp, "-a", java, self.ctx.javaclass_dir)


recipe = BleakRecipe()
