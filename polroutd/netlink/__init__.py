"""netlink"""
