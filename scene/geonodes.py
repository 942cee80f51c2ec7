"""The Geometry Nodes group that displays a point-cloud mesh, built in Python.

Modifier inputs (change them live; nothing is rebuilt):
  "Radius"          point radius in scene units
  "Min Confidence"  points whose `confidence` attribute is below it are hidden
  "As Mesh"         show each point as a small icosphere mesh instead of a point primitive. Point
                    primitives render coloured in EEVEE/Cycles (material) but Workbench ignores their
                    colour; the mesh variant keeps the `Color` attribute active, so Solid view and
                    Workbench renders with attribute colour show it too (at 12 vertices per point).
"""

from __future__ import annotations

INPUT_RADIUS = "Radius"
INPUT_MIN_CONF = "Min Confidence"
INPUT_AS_MESH = "As Mesh"


def _socket(group, name: str, in_out: str, socket_type: str, default=None, min_value=None):
    s = group.interface.new_socket(name, in_out=in_out, socket_type=socket_type)
    if default is not None:
        s.default_value = default
    if min_value is not None:
        s.min_value = min_value
    return s


def point_display_group(name: str, material, radius: float, min_conf: float, as_mesh: bool, created):
    """Create the node group (see module docstring); `material` is assigned to the displayed points."""
    import bpy

    g = created.add(bpy.data.node_groups.new(name, "GeometryNodeTree"))
    _socket(g, "Geometry", "INPUT", "NodeSocketGeometry")
    _socket(g, INPUT_RADIUS, "INPUT", "NodeSocketFloat", radius, 0.0)
    _socket(g, INPUT_MIN_CONF, "INPUT", "NodeSocketFloat", min_conf)
    _socket(g, INPUT_AS_MESH, "INPUT", "NodeSocketBool", as_mesh)
    _socket(g, "Geometry", "OUTPUT", "NodeSocketGeometry")

    N, link = g.nodes, g.links.new
    gin = N.new("NodeGroupInput")
    gout = N.new("NodeGroupOutput")
    conf = N.new("GeometryNodeInputNamedAttribute")
    conf.data_type = "FLOAT"
    conf.inputs["Name"].default_value = "confidence"
    less = N.new("FunctionNodeCompare")
    less.data_type = "FLOAT"
    less.operation = "LESS_THAN"
    delete = N.new("GeometryNodeDeleteGeometry")
    delete.domain = "POINT"
    to_points = N.new("GeometryNodeMeshToPoints")
    ico = N.new("GeometryNodeMeshIcoSphere")
    ico.inputs["Radius"].default_value = 1.0
    ico.inputs["Subdivisions"].default_value = 1
    inst = N.new("GeometryNodeInstanceOnPoints")
    join = N.new("GeometryNodeJoinGeometry")
    realize = N.new("GeometryNodeRealizeInstances")
    switch = N.new("GeometryNodeSwitch")
    switch.input_type = "GEOMETRY"
    set_mat = N.new("GeometryNodeSetMaterial")
    set_mat.inputs["Material"].default_value = material

    link(conf.outputs["Attribute"], less.inputs[0])          # inputs 0/1 are the FLOAT A/B pair
    link(gin.outputs[INPUT_MIN_CONF], less.inputs[1])
    link(gin.outputs["Geometry"], delete.inputs["Geometry"])
    link(less.outputs["Result"], delete.inputs["Selection"])
    link(delete.outputs["Geometry"], to_points.inputs["Mesh"])
    link(gin.outputs[INPUT_RADIUS], to_points.inputs["Radius"])
    link(delete.outputs["Geometry"], inst.inputs["Points"])
    link(ico.outputs["Mesh"], inst.inputs["Instance"])
    link(gin.outputs[INPUT_RADIUS], inst.inputs["Scale"])
    # Joining the (face-less) source mesh first keeps its active colour attribute on the result;
    # realised instances alone come out with no active colour and Workbench would draw them black.
    link(delete.outputs["Geometry"], join.inputs["Geometry"])
    link(inst.outputs["Instances"], join.inputs["Geometry"])
    link(join.outputs["Geometry"], realize.inputs["Geometry"])
    link(gin.outputs[INPUT_AS_MESH], switch.inputs["Switch"])
    link(to_points.outputs["Points"], switch.inputs["False"])
    link(realize.outputs["Geometry"], switch.inputs["True"])
    link(switch.outputs[0], set_mat.inputs["Geometry"])
    link(set_mat.outputs["Geometry"], gout.inputs[0])

    for x, node in enumerate([gin, conf, less, delete, to_points, inst, join, realize, switch, set_mat, gout]):
        node.location = (200 * x, 0)
    ico.location = (200 * 4, -250)
    return g


def input_identifier(group, name: str) -> str:
    """The modifier key ("Socket_N") of the group input called `name`."""
    for item in group.interface.items_tree:
        if getattr(item, "in_out", None) == "INPUT" and item.name == name:
            return item.identifier
    raise KeyError(f"node group {group.name!r} has no input {name!r}")


def set_modifier_input(obj, modifier, name: str, value) -> None:
    """Set a GN modifier input by its display name and tag the object for re-evaluation."""
    modifier[input_identifier(modifier.node_group, name)] = value
    obj.update_tag()


def get_modifier_input(modifier, name: str):
    return modifier[input_identifier(modifier.node_group, name)]
