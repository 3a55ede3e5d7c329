"""The admin catalogue's uniform CRUD resources (api.md §9.4–§9.10, §9.14), one spec each."""

from __future__ import annotations

from adapters.http.admin import crud
from adapters.http.admin import fields as f
from adapters.http.admin import routes_companies as companies
from adapters.http.admin import routes_cost_plans as plans
from adapters.http.admin import routes_custom_pricing as pricing
from adapters.http.admin import routes_hosts as hosts
from adapters.http.admin import routes_ip_space as ip_space
from adapters.http.admin import routes_os_images as images
from adapters.http.admin import routes_regions as regions
from adapters.http.admin import routes_templates as templates
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.admin import views_catalogue as views
from adapters.http.openapi import RouteTable

CATALOGUE: tuple[crud.Resource, ...] = (
    crud.Resource(
        "/companies",
        crud.Crud(
            resource=companies.RESOURCE,
            render=views.company_json,
            fields=companies.read_fields,
            rows=lambda _, s: s.infra.list_companies(),
            one=lambda s, i: s.infra.get_company(i),
            create=lambda s, b: s.infra.create_company(b),
            update=lambda s, i, b: s.infra.update_company(i, b),
            delete=lambda s, i: s.infra.delete_company(i),
            answer=lambda _: None,
        ).routes(),
        crud.Docs(
            list="Companies",
            get="One company",
            create="Create a company (base_currency EUR by default)",
            update="Update a company (a blank optional field clears it)",
            delete="Delete a company no region, IP space, config or subscription uses",
            response=sch.COMPANY,
            request=companies.REQUEST,
            deleted=sch.NULL,
        ),
    ),
    crud.Resource(
        "/regions",
        crud.Crud(
            resource=regions.RESOURCE,
            render=views.region_json,
            fields=regions.read_fields,
            rows=lambda request, s: s.infra.list_regions(f.query_flag(request.query, "enabled")),
            one=lambda s, i: s.infra.get_region(i),
            create=lambda s, b: s.infra.create_region(b),
            update=lambda s, i, b: s.infra.update_region(i, b),
            delete=lambda s, i: s.infra.disable_region(i),
            answer=lambda _: {"success": True, "message": "Region disabled successfully"},
        ).routes(),
        crud.Docs(
            list="Regions with host, VM and address totals",
            get="One region",
            create="Create a region (company_id defaults to the first company)",
            update="Update a region",
            delete="Disable a region (refused while hosts are assigned)",
            response=sch.REGION,
            request=regions.REQUEST,
            deleted=sch.DELETED,
            query=regions.QUERY,
        ),
        regions.add_stats_route,
    ),
    crud.Resource(
        "/hosts",
        crud.Routes(
            crud.list_route(hosts.RESOURCE, lambda _, s: s.infra.list_hosts(), views.host_json),
            crud.get_route(hosts.RESOURCE, lambda s, i: s.infra.get_host(i), views.host_json),
            hosts.create_host,
            hosts.update_host,
        ),
        crud.Docs(
            list="Hosts with their disks and load",
            get="One host",
            create="Store a host (its API token is kept encrypted and never returned)",
            update="Update a host",
            response=sch.HOST,
            request=hosts.REQUEST,
        ),
        hosts.add_disk_routes,
    ),
    crud.Resource(
        "/cost_plans",
        crud.Crud(
            resource=plans.RESOURCE,
            render=views.cost_plan_json,
            fields=plans.read_fields,
            rows=lambda _, s: s.infra.list_cost_plans(),
            one=lambda s, i: s.infra.get_cost_plan(i),
            create=lambda s, b: s.infra.create_cost_plan(b),
            update=lambda s, i, b: s.infra.update_cost_plan(i, b),
            delete=lambda s, i: s.infra.delete_cost_plan(i),
            answer=lambda _: {"success": True, "message": "Cost plan deleted successfully"},
        ).routes(),
        crud.Docs(
            list="Cost plans, newest first",
            get="One cost plan",
            create="Create a cost plan (amount in smallest units)",
            update="Update a cost plan (every template on it changes)",
            delete="Delete a cost plan no template uses",
            response=sch.COST_PLAN,
            request=plans.REQUEST,
            deleted=sch.DELETED,
        ),
    ),
    crud.Resource(
        "/vm_templates",
        crud.Crud(
            resource=templates.RESOURCE,
            render=views.template_json,
            fields=templates.read_fields,
            rows=lambda _, s: s.infra.list_templates(),
            one=lambda s, i: s.infra.get_template(i),
            create=lambda s, b: s.infra.create_template(b),
            update=lambda s, i, b: s.infra.update_template(i, b),
            delete=lambda s, i: s.infra.delete_template(i),
            answer=lambda message: {"success": True, "message": message},
        ).routes(),
        crud.Docs(
            list="Every VM template, disabled too",
            get="One VM template",
            create="Create a template (and its cost plan when no cost_plan_id is given)",
            update="Update a template; cost_plan_* fields edit its plan in place",
            delete="Delete a template no VM uses (its plan too when unused)",
            response=sch.TEMPLATE,
            request=templates.REQUEST,
            deleted=sch.DELETED,
        ),
    ),
    crud.Resource(
        "/custom_pricing",
        crud.Crud(
            resource=pricing.RESOURCE,
            render=views.pricing_json,
            fields=pricing.read_fields,
            rows=pricing.rows,
            one=lambda s, i: s.infra.get_custom_pricing(i),
            create=lambda s, b: s.infra.create_custom_pricing(b),
            update=lambda s, i, b: s.infra.update_custom_pricing(i, b),
            delete=lambda s, i: s.infra.delete_custom_pricing(i),
            answer=lambda message: {"success": True, "message": message},
        ).routes(),
        crud.Docs(
            list="Custom pricing models",
            get="One custom pricing model",
            create="Create a pricing model (prices per core / GiB / address per month)",
            update="Update a pricing model; disk_pricing replaces every disk row",
            delete="Delete a pricing model (disabled instead while templates use it)",
            response=sch.PRICING,
            request=pricing.REQUEST,
            deleted=sch.DELETED,
            query=pricing.QUERY,
        ),
        pricing.add_copy_route,
    ),
    crud.Resource(
        "/vm_os_images",
        crud.Crud(
            resource=images.RESOURCE,
            render=views.image_json,
            fields=images.read_fields,
            rows=lambda _, s: s.infra.list_images(),
            one=lambda s, i: s.infra.get_image(i),
            create=lambda s, b: s.infra.create_image(b),
            update=lambda s, i, b: s.infra.update_image(i, b),
            delete=lambda s, i: s.infra.delete_image(i),
            answer=lambda _: "VM OS image deleted successfully",
        ).routes(),
        crud.Docs(
            list="OS images",
            get="One OS image",
            create="Add an OS image (distribution, flavour and version are unique together)",
            update="Update an OS image (a new url or sha2_url without sha2 clears sha2)",
            delete="Delete an image no VM uses",
            response=sch.IMAGE,
            request=images.REQUEST,
            deleted=images.STRING,
        ),
        images.add_download_route,
    ),
    crud.Resource(
        "/ip_space",
        crud.Crud(
            resource=ip_space.RESOURCE,
            render=views.space_json,
            fields=ip_space.read_fields,
            rows=ip_space.spaces,
            one=lambda s, i: s.infra.get_ip_space(i),
            create=lambda s, b: s.infra.create_ip_space(b),
            update=lambda s, i, b: s.infra.update_ip_space(i, b),
            delete=lambda s, i: s.infra.delete_ip_space(i),
            answer=lambda _: None,
        ).routes(),
        crud.Docs(
            list="IP space for sale, newest first",
            get="One IP space",
            create="Add IP space (company_id defaults to the first company)",
            update="Update IP space (checks re-run on the result)",
            delete="Delete IP space nothing was sold from",
            response=sch.SPACE,
            request=ip_space.REQUEST,
            deleted=sch.NULL,
            query=ip_space.QUERY,
        ),
        ip_space.add_pricing_routes,
    ),
)


def add_admin_catalogue_routes(table: RouteTable) -> None:
    """Each resource's CRUD routes, then its others."""
    for resource in CATALOGUE:
        crud.add_crud(table, resource.path, resource.routes, resource.docs)
        if resource.more is not None:
            resource.more(table)
