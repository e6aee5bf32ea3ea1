"""Start-up detection of network managers that would delete polroutd's objects, and the
contrib drop-ins that stop them (checked against the same reader)."""

from __future__ import annotations

from pathlib import Path

import pytest

from polroutd.core import tables as names
from polroutd.inputs.foreign_managers import (
    foreign_manager_warnings,
    networkd_config_files,
    networkd_warning,
    networkmanager_warning,
)

REPO = Path(__file__).resolve().parents[2]
CONTRIB = REPO / "contrib"
BOTH_OFF = "[Network]\nManageForeignRoutingPolicyRules=no\nManageForeignRoutes=no\n"


class Host:
    """A fake file system root with /etc, /run and /usr/lib."""

    def __init__(self, root: Path) -> None:
        self.etc = root / "etc"
        self.run = root / "run"
        self.lib = root / "usr" / "lib"
        for directory in (self.etc, self.run, self.lib):
            directory.mkdir(parents=True)

    def write(self, base: Path, relative: str, text: str) -> Path:
        path = base / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def networkd_running(self) -> None:
        self.write(self.run, "systemd/netif/state", "OPER_STATE=routable\n")

    def networkmanager_running(self) -> None:
        (self.run / "NetworkManager").mkdir(parents=True, exist_ok=True)

    def networkd_warning(self) -> str | None:
        return networkd_warning(self.etc, self.run, self.lib)

    def networkmanager_warning(self) -> str | None:
        return networkmanager_warning(self.etc, self.run, self.lib)


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


# --- systemd-networkd ----------------------------------------------------------------------

def test_not_running_means_nothing_to_say(host: Host) -> None:
    assert host.networkd_warning() is None


def test_defaults_warn_about_both_settings_and_name_the_fix(host: Host) -> None:
    host.networkd_running()
    warning = host.networkd_warning()
    assert warning is not None
    assert "ManageForeignRoutingPolicyRules=yes" in warning
    assert "ManageForeignRoutes=yes" in warning
    assert "contrib/systemd-networkd/10-polroutd-foreign.conf" in warning
    assert "\n" not in warning


def test_debian_default_file_with_everything_commented_out_warns(host: Host) -> None:
    host.networkd_running()
    host.write(host.etc, "systemd/networkd.conf",
               "[Network]\n#ManageForeignRoutingPolicyRules=yes\n#ManageForeignRoutes=yes\n")
    assert host.networkd_warning() is not None


def test_only_the_setting_still_on_is_named(host: Host) -> None:
    host.networkd_running()
    host.write(host.etc, "systemd/networkd.conf", "[Network]\nManageForeignRoutes=no\n")
    warning = host.networkd_warning()
    assert warning is not None
    assert "ManageForeignRoutingPolicyRules=yes" in warning
    assert "ManageForeignRoutes=yes" not in warning


def test_drop_in_with_both_off_silences_it(host: Host) -> None:
    host.networkd_running()
    host.write(host.etc, "systemd/networkd.conf.d/10-polroutd-foreign.conf", BOTH_OFF)
    assert host.networkd_warning() is None


def test_the_shipped_drop_in_silences_it(host: Host) -> None:
    host.networkd_running()
    shipped = (CONTRIB / "systemd-networkd" / "10-polroutd-foreign.conf").read_text()
    host.write(host.etc, "systemd/networkd.conf.d/10-polroutd-foreign.conf", shipped)
    assert host.networkd_warning() is None


def test_etc_drop_in_overrides_lib_drop_in_of_the_same_name(host: Host) -> None:
    host.networkd_running()
    host.write(host.lib, "systemd/networkd.conf.d/10-polroutd-foreign.conf", BOTH_OFF)
    assert host.networkd_warning() is None
    host.write(host.etc, "systemd/networkd.conf.d/10-polroutd-foreign.conf",
               "[Network]\nManageForeignRoutes=yes\n")
    warning = host.networkd_warning()
    assert warning is not None
    # The /usr/lib file is masked as a whole, not merged: both settings are back to yes.
    assert "ManageForeignRoutingPolicyRules=yes" in warning


def test_dev_null_symlink_masks_a_drop_in(host: Host) -> None:
    host.networkd_running()
    host.write(host.lib, "systemd/networkd.conf.d/10-polroutd-foreign.conf", BOTH_OFF)
    (host.etc / "systemd/networkd.conf.d").mkdir(parents=True)
    (host.etc / "systemd/networkd.conf.d/10-polroutd-foreign.conf").symlink_to("/dev/null")
    assert host.networkd_warning() is not None


def test_drop_ins_apply_in_file_name_order_across_directories(host: Host) -> None:
    host.networkd_running()
    host.write(host.etc, "systemd/networkd.conf.d/10-off.conf", BOTH_OFF)
    host.write(host.lib, "systemd/networkd.conf.d/90-vendor.conf",
               "[Network]\nManageForeignRoutes=yes\n")
    warning = host.networkd_warning()
    assert warning is not None
    assert "ManageForeignRoutes=yes" in warning
    assert "ManageForeignRoutingPolicyRules" not in warning


def test_drop_ins_override_the_main_file(host: Host) -> None:
    host.networkd_running()
    host.write(host.etc, "systemd/networkd.conf", BOTH_OFF)
    assert host.networkd_warning() is None
    host.write(host.run, "systemd/networkd.conf.d/50-runtime.conf",
               "[Network]\nManageForeignRoutingPolicyRules=true\n")
    warning = host.networkd_warning()
    assert warning is not None and "ManageForeignRoutingPolicyRules=yes" in warning


def test_main_file_in_lib_is_read_unless_etc_has_one(host: Host) -> None:
    host.networkd_running()
    host.write(host.lib, "systemd/networkd.conf", BOTH_OFF)
    assert host.networkd_warning() is None
    host.write(host.etc, "systemd/networkd.conf", "[Network]\n")
    assert host.networkd_warning() is not None
    assert networkd_config_files(host.etc, host.run, host.lib) == [
        host.etc / "systemd/networkd.conf"]


@pytest.mark.parametrize("off", ["no", "0", "false", "off", "N", "  No  "])
def test_boolean_spellings(host: Host, off: str) -> None:
    host.networkd_running()
    host.write(host.etc, "systemd/networkd.conf",
               f"[Network]\nManageForeignRoutingPolicyRules={off}\nManageForeignRoutes = {off}\n")
    assert host.networkd_warning() is None


def test_invalid_values_and_other_sections_are_ignored(host: Host) -> None:
    host.networkd_running()
    host.write(host.etc, "systemd/networkd.conf", BOTH_OFF)
    host.write(host.etc, "systemd/networkd.conf.d/50-odd.conf",
               "[Network]\nManageForeignRoutes=maybe\n"
               "[DHCPv4]\nManageForeignRoutingPolicyRules=yes\n"
               "; ManageForeignRoutes=yes\n")
    assert host.networkd_warning() is None


# --- NetworkManager ------------------------------------------------------------------------

def test_networkmanager_defaults_need_no_warning(host: Host) -> None:
    host.networkmanager_running()
    host.write(host.etc, "NetworkManager/NetworkManager.conf", "[main]\nplugins=ifupdown\n")
    assert host.networkmanager_warning() is None


def test_networkmanager_global_route_table_warns(host: Host) -> None:
    host.networkmanager_running()
    host.write(host.etc, "NetworkManager/conf.d/50-cloud.conf",
               "[connection-cloud]\nmatch-device=interface-name:eth*\nipv4.route-table=30200\n")
    warning = host.networkmanager_warning()
    assert warning is not None
    assert "[connection-cloud] ipv4.route-table=30200" in warning
    assert "\n" not in warning


def test_networkmanager_not_running_means_nothing_to_say(host: Host) -> None:
    host.write(host.etc, "NetworkManager/conf.d/50-cloud.conf",
               "[connection]\nipv6.route-table=200\n")
    assert host.networkmanager_warning() is None


def test_networkmanager_etc_snippet_shadows_lib_snippet(host: Host) -> None:
    host.networkmanager_running()
    host.write(host.lib, "NetworkManager/conf.d/50-vendor.conf",
               "[connection]\nipv4.route-table=200\n")
    assert host.networkmanager_warning() is not None
    host.write(host.etc, "NetworkManager/conf.d/50-vendor.conf", "[main]\n")
    assert host.networkmanager_warning() is None


def test_networkmanager_later_file_overrides_same_section(host: Host) -> None:
    host.networkmanager_running()
    host.write(host.lib, "NetworkManager/conf.d/50-vendor.conf",
               "[connection]\nipv4.route-table=200\n")
    host.write(host.etc, "NetworkManager/NetworkManager.conf",
               "[connection]\nipv4.route-table=0\n")
    assert host.networkmanager_warning() is None


def test_the_shipped_networkmanager_drop_in_is_quiet(host: Host) -> None:
    host.networkmanager_running()
    shipped = (CONTRIB / "NetworkManager" / "90-polroutd.conf").read_text()
    host.write(host.etc, "NetworkManager/conf.d/90-polroutd.conf", shipped)
    assert "[connection-polroutd]" in shipped
    assert host.networkmanager_warning() is None


def test_all_warnings_together(host: Host) -> None:
    assert foreign_manager_warnings(host.etc, host.run, host.lib) == []
    host.networkd_running()
    host.networkmanager_running()
    host.write(host.etc, "NetworkManager/conf.d/50-x.conf", "[connection]\nipv4.route-table=7\n")
    warnings = foreign_manager_warnings(host.etc, host.run, host.lib)
    assert len(warnings) == 2
    assert "systemd-networkd" in warnings[0] and "NetworkManager" in warnings[1]


# --- iproute2 ------------------------------------------------------------------------------

def test_shipped_rt_protos_file_names_polroutds_protocol() -> None:
    text = (CONTRIB / "iproute2" / "rt_protos.d" / "polroutd.conf").read_text()
    assert names.parse_name_file(text) == {
        names.DEFAULT_PROTOCOL_NAME: names.DEFAULT_PROTOCOL_NUMBER}
