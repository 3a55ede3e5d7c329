"""The admin use cases on hosts, regions, images, templates, pricing, IP space, companies and
cost plans, with this process's ports given."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from app.admin import (
    companies,
    cost_plans,
    custom_pricing,
    hosts,
    ip_space,
    os_images,
    regions,
    vm_templates,
)
from app.bound.inject import bind, repricing

if TYPE_CHECKING:
    from app.services import Services


class InfraUseCases:
    """Built once per process; `ip_`/`custom_` name the pricing a call is about."""

    def __init__(self, svc: Services) -> None:
        uow_factory, clock, rails, queue = svc.uow_factory, svc.clock, svc.rails, svc.queue
        store = (uow_factory, clock)
        self.list_hosts = bind(hosts.list_hosts, *store)
        self.get_host = bind(hosts.get_host, *store)
        self.create_host = bind(hosts.create_host, *store)
        self.update_host = bind(hosts.update_host, *store)
        self.list_disks = bind(hosts.list_disks, uow_factory)
        self.get_disk = bind(hosts.get_disk, uow_factory)
        self.create_disk = bind(hosts.create_disk, uow_factory)
        self.update_disk = bind(hosts.update_disk, uow_factory)
        self.list_regions = bind(regions.list_regions, uow_factory)
        self.get_region = bind(regions.get_region, uow_factory)
        self.create_region = bind(regions.create_region, uow_factory)
        self.update_region = bind(regions.update_region, uow_factory)
        self.disable_region = bind(regions.disable_region, uow_factory)
        self.list_images = bind(os_images.list_images, uow_factory)
        self.get_image = bind(os_images.get_image, uow_factory)
        self.create_image = bind(os_images.create_image, uow_factory)
        self.update_image = bind(os_images.update_image, uow_factory)
        self.delete_image = bind(os_images.delete_image, uow_factory)
        self.request_image_download = bind(os_images.request_download, uow_factory, queue)
        self.list_templates = bind(vm_templates.list_templates, uow_factory)
        self.get_template = bind(vm_templates.get_template, uow_factory)
        self.create_template = bind(vm_templates.create_template, *store)
        self.update_template = repricing(vm_templates.update_template, *store, rails)
        self.delete_template = bind(vm_templates.delete_template, uow_factory)
        self.list_custom_pricings = bind(custom_pricing.list_pricings, uow_factory)
        self.get_custom_pricing = bind(custom_pricing.get_pricing, uow_factory)
        self.create_custom_pricing = bind(custom_pricing.create_pricing, *store)
        self.copy_custom_pricing = bind(custom_pricing.copy_pricing, *store)
        self.update_custom_pricing = repricing(custom_pricing.update_pricing, *store, rails)
        # disabled or gone, it ends the upgrade quotes growing on it, on this process's rails
        self.delete_custom_pricing = partial(custom_pricing.delete_pricing, *store, rails=rails)
        self.list_ip_spaces = bind(ip_space.list_spaces, uow_factory)
        self.get_ip_space = bind(ip_space.get_space, uow_factory)
        self.create_ip_space = bind(ip_space.create_space, *store)
        self.update_ip_space = bind(ip_space.update_space, *store)
        self.delete_ip_space = bind(ip_space.delete_space, uow_factory)
        self.list_ip_pricing = bind(ip_space.list_pricing, uow_factory)
        self.get_ip_pricing = bind(ip_space.get_pricing, uow_factory)
        self.create_ip_pricing = bind(ip_space.create_pricing, *store)
        self.update_ip_pricing = bind(ip_space.update_pricing, *store)
        self.delete_ip_pricing = bind(ip_space.delete_pricing, uow_factory)
        self.list_sold_ips = bind(ip_space.list_sold, uow_factory)
        self.list_companies = bind(companies.list_companies, uow_factory)
        self.get_company = bind(companies.get_company, uow_factory)
        self.create_company = bind(companies.create_company, *store)
        self.update_company = bind(companies.update_company, uow_factory)
        self.delete_company = bind(companies.delete_company, uow_factory)
        self.list_cost_plans = bind(cost_plans.list_cost_plans, uow_factory)
        self.get_cost_plan = bind(cost_plans.get_cost_plan, uow_factory)
        self.create_cost_plan = bind(cost_plans.create_cost_plan, *store)
        self.update_cost_plan = repricing(cost_plans.update_cost_plan, *store, rails)
        self.delete_cost_plan = bind(cost_plans.delete_cost_plan, uow_factory)
