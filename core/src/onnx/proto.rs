//! The subset of ONNX's protobuf messages that kiln writes, as hand-written
//! `#[derive(prost::Message)]` structs.
//!
//! Field numbers and types are those of `onnx/onnx.proto` as shipped in the
//! `onnx` 1.23.2 wheel (IR version 0x0E); each field's comment names the
//! proto field. Only what an exported model uses is declared; a reader skips
//! nothing it needs, and prost encodes the declared fields exactly as the
//! generated code of the full file would. `tests/onnx_runtime.rs` checks the
//! written files with `onnx.checker.check_model(full_check = True)`, which
//! parses them with the reference protobuf classes.
//!
//! The proto file is proto2; where presence matters to a reader
//! (`AttributeProto`'s value fields, the dimension's `dim_value` /
//! `dim_param` pair, which is a `oneof` there) the fields are
//! `optional`, so a zero is written rather than omitted.

/// `TensorProto.DataType.FLOAT`.
pub const FLOAT: i32 = 1;
/// `TensorProto.DataType.INT64`.
pub const INT64: i32 = 7;
/// `TensorProto.DataType.DOUBLE`.
pub const DOUBLE: i32 = 11;

/// `AttributeProto.AttributeType` values kiln writes.
pub mod attr_type {
    /// `FLOAT`
    pub const FLOAT: i32 = 1;
    /// `INT`
    pub const INT: i32 = 2;
    /// `FLOATS`
    pub const FLOATS: i32 = 6;
    /// `INTS`
    pub const INTS: i32 = 7;
    /// `STRING`
    pub const STRING: i32 = 3;
    /// `STRINGS`
    pub const STRINGS: i32 = 8;
}

/// `message ModelProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// `optional int64 ir_version = 1;`
    #[prost(int64, optional, tag = "1")]
    pub ir_version: Option<i64>,
    /// `repeated OperatorSetIdProto opset_import = 8;`
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// `optional string producer_name = 2;`
    #[prost(string, optional, tag = "2")]
    pub producer_name: Option<String>,
    /// `optional string producer_version = 3;`
    #[prost(string, optional, tag = "3")]
    pub producer_version: Option<String>,
    /// `optional string doc_string = 6;`
    #[prost(string, optional, tag = "6")]
    pub doc_string: Option<String>,
    /// `optional GraphProto graph = 7;`
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

/// `message OperatorSetIdProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// `optional string domain = 1;` (empty: the default `ai.onnx` domain)
    #[prost(string, optional, tag = "1")]
    pub domain: Option<String>,
    /// `optional int64 version = 2;`
    #[prost(int64, optional, tag = "2")]
    pub version: Option<i64>,
}

/// `message GraphProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// `repeated NodeProto node = 1;`
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// `optional string name = 2;`
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    /// `repeated TensorProto initializer = 5;`
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// `optional string doc_string = 10;`
    #[prost(string, optional, tag = "10")]
    pub doc_string: Option<String>,
    /// `repeated ValueInfoProto input = 11;`
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// `repeated ValueInfoProto output = 12;`
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// `message NodeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// `repeated string input = 1;`
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// `repeated string output = 2;`
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// `optional string name = 3;`
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    /// `optional string op_type = 4;`
    #[prost(string, optional, tag = "4")]
    pub op_type: Option<String>,
    /// `repeated AttributeProto attribute = 5;`
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// `message AttributeProto` (the value kinds kiln writes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// `optional string name = 1;`
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// `optional AttributeType type = 20;`
    #[prost(int32, optional, tag = "20")]
    pub r#type: Option<i32>,
    /// `optional float f = 2;`
    #[prost(float, optional, tag = "2")]
    pub f: Option<f32>,
    /// `optional int64 i = 3;`
    #[prost(int64, optional, tag = "3")]
    pub i: Option<i64>,
    /// `optional bytes s = 4;`
    #[prost(bytes = "vec", optional, tag = "4")]
    pub s: Option<Vec<u8>>,
    /// `repeated float floats = 7;`
    #[prost(float, repeated, packed = "false", tag = "7")]
    pub floats: Vec<f32>,
    /// `repeated int64 ints = 8;`
    #[prost(int64, repeated, packed = "false", tag = "8")]
    pub ints: Vec<i64>,
    /// `repeated bytes strings = 9;`
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
}

/// `message TensorProto` (dense tensors with `raw_data`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `repeated int64 dims = 1;`
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i64>,
    /// `optional int32 data_type = 2;`
    #[prost(int32, optional, tag = "2")]
    pub data_type: Option<i32>,
    /// `optional string name = 8;`
    #[prost(string, optional, tag = "8")]
    pub name: Option<String>,
    /// `optional bytes raw_data = 9;` (little-endian values, row-major)
    #[prost(bytes = "vec", optional, tag = "9")]
    pub raw_data: Option<Vec<u8>>,
}

/// `message ValueInfoProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// `optional string name = 1;`
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// `optional TypeProto type = 2;`
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// `message TypeProto` (its `oneof value` holding `Tensor tensor_type = 1`,
/// the only member kiln writes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// `Tensor tensor_type = 1;`
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeProtoTensor>,
}

/// `message TypeProto.Tensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProtoTensor {
    /// `optional int32 elem_type = 1;`
    #[prost(int32, optional, tag = "1")]
    pub elem_type: Option<i32>,
    /// `optional TensorShapeProto shape = 2;`
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// `message TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// `repeated Dimension dim = 1;`
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `message TensorShapeProto.Dimension`: its `oneof value` is
/// `int64 dim_value = 1; string dim_param = 2;`; exactly one is set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    /// `int64 dim_value = 1;`
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    /// `string dim_param = 2;` (a symbolic dimension such as `"batch"`)
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}
