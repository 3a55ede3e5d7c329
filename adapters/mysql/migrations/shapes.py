"""Frozen column sets of the LNVPS shapes behind r1–r3, used to adopt sqlx-managed databases."""

from __future__ import annotations

from adapters.mysql.migrations import (
    R1_LEGACY,
    R2_VM_SUBSCRIPTION_LINK,
    R3_ADD_EMAIL_HASH,
    SQLX_TABLE,
)

#: Tables and columns at sqlx 20260615000000 (= r3), in scope of this program.
_R3: dict[str, str] = {
    "admin_roles": "id name description is_system_role created_at updated_at",
    "company": (
        "id created name email phone address_1 address_2 city state postcode country_code "
        "tax_id base_currency"
    ),
    "router": "id name enabled kind url token",
    "users": (
        "id pubkey created email email_verified email_verify_token contact_nip17 contact_email "
        "country_code billing_name billing_address_1 billing_address_2 billing_city "
        "billing_state billing_postcode billing_tax_id nwc_connection_string email_hash"
    ),
    "vm_cost_plan": "id name created amount currency interval_amount interval_type",
    "vm_os_image": (
        "id distribution flavour version enabled release_date url default_username sha2 sha2_url"
    ),
    "access_policy": "id name kind router_id interface",
    "admin_role_assignments": "id user_id role_id assigned_by assigned_at expires_at",
    "admin_role_permissions": "id role_id resource action created_at",
    "available_ip_space": (
        "id company_id cidr min_prefix_size max_prefix_size created updated registry "
        "external_id is_available is_reserved metadata"
    ),
    "payment_method_config": (
        "id company_id payment_method name enabled provider_type config processing_fee_rate "
        "processing_fee_base processing_fee_currency created modified supported_currencies"
    ),
    "subscription": (
        "id user_id company_id name description created expires is_active is_setup currency "
        "interval_amount interval_type setup_fee auto_renewal_enabled external_id"
    ),
    "user_ssh_key": "id name user_id created key_data",
    "vm_host_region": "id name enabled company_id",
    "ip_range": (
        "id cidr enabled region_id gateway reverse_zone_id access_policy_id allocation_mode "
        "use_full_range"
    ),
    "ip_space_pricing": (
        "id available_ip_space_id prefix_size price_per_month currency setup_fee created updated"
    ),
    "subscription_line_item": (
        "id subscription_id subscription_type name description amount setup_amount configuration"
    ),
    "subscription_payment": (
        "id subscription_id user_id created expires amount currency payment_method payment_type "
        "external_data external_id is_paid rate time_value metadata tax processing_fee paid_at"
    ),
    "vm_custom_pricing": (
        "id name enabled created expires region_id currency cpu_cost memory_cost ip4_cost "
        "ip6_cost min_cpu max_cpu min_memory max_memory cpu_mfg cpu_arch cpu_features "
        "disk_iops_read disk_iops_write disk_mbps_read disk_mbps_write network_mbps cpu_limit"
    ),
    "vm_host": (
        "id kind region_id name ip cpu memory enabled api_token load_cpu load_memory load_disk "
        "vlan_id mtu cpu_mfg cpu_arch cpu_features ssh_user ssh_key"
    ),
    "vm_template": (
        "id name enabled created expires cpu cpu_mfg cpu_arch cpu_features memory disk_size "
        "disk_type disk_interface cost_plan_id region_id disk_iops_read disk_iops_write "
        "disk_mbps_read disk_mbps_write network_mbps cpu_limit"
    ),
    "ip_range_subscription": (
        "id subscription_line_item_id available_ip_space_id created cidr is_active started_at "
        "ended_at metadata"
    ),
    "vm_custom_pricing_disk": "id pricing_id kind interface cost min_disk_size max_disk_size",
    "vm_custom_template": (
        "id cpu memory disk_size disk_type disk_interface pricing_id cpu_mfg cpu_arch "
        "cpu_features disk_iops_read disk_iops_write disk_mbps_read disk_mbps_write "
        "network_mbps cpu_limit"
    ),
    "vm_host_disk": "id host_id name size kind interface enabled",
    "vm": (
        "id host_id user_id image_id template_id ssh_key_id created expires disk_id mac_address "
        "deleted ref_code custom_template_id subscription_line_item_id auto_renewal_enabled "
        "disabled"
    ),
    "vm_history": (
        "id vm_id action_type timestamp initiated_by_user previous_state new_state metadata "
        "description"
    ),
    "vm_ip_assignment": (
        "id vm_id ip_range_id ip deleted arp_ref dns_reverse dns_reverse_ref dns_forward "
        "dns_forward_ref"
    ),
    "vm_payment": (
        "id vm_id created expires amount external_data time_value is_paid rate currency "
        "payment_method external_id tax payment_type upgrade_params processing_fee paid_at"
    ),
}

#: Columns 20260615000000 added (r3 minus r2).
_ADDED_BY_R3 = {"users": {"email_hash"}}
#: Columns 20260302151134 added (r2 minus r1).
_ADDED_BY_R2 = {
    "subscription": {"interval_amount", "interval_type", "is_setup"},
    "subscription_payment": {"time_value", "metadata"},
    "vm": {"subscription_line_item_id"},
}


def _minus(
    shape: dict[str, frozenset[str]], delta: dict[str, set[str]]
) -> dict[str, frozenset[str]]:
    return {name: cols - delta.get(name, set()) for name, cols in shape.items()}


_R3_SHAPE = {name: frozenset(cols.split()) for name, cols in _R3.items()}
_R2_SHAPE = _minus(_R3_SHAPE, _ADDED_BY_R3)
_R1_SHAPE = _minus(_R2_SHAPE, _ADDED_BY_R2)

#: Revision → {table: columns} the database must have to be stamped at that revision.
SHAPES: dict[str, dict[str, frozenset[str]]] = {
    R1_LEGACY: _R1_SHAPE,
    R2_VM_SUBSCRIPTION_LINK: _R2_SHAPE,
    R3_ADD_EMAIL_HASH: _R3_SHAPE,
}

#: Highest successful sqlx version → the revision it corresponds to.
SQLX_TO_REVISION: dict[int, str] = {
    20260225000001: R1_LEGACY,
    20260302151134: R2_VM_SUBSCRIPTION_LINK,
    20260615000000: R3_ADD_EMAIL_HASH,
}

#: Migrations that existed on the PR branch and were deleted (schema.md §0.1).
DELETED_SQLX_VERSIONS: dict[int, str] = {
    20260302154256: "vm_subscription_not_null",
    20260303114230: "fix_referral_constraint_names",
    20260304000000: "drop_vm_expires",
    20260310000000: "drop_vm_created",
}

#: LNVPS tables outside our scope that may sit in an adopted database.
FOREIGN_TABLES = frozenset(
    {SQLX_TABLE, "nostr_domain", "nostr_domain_handle", "referral", "referral_payout"}
)
