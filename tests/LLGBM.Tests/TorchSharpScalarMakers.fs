/// The TorchSharp members that make native scalars of their own, read from TorchSharp's IL. Some overloads turn a
/// number into a temporary `Scalar` inside the library: `Tensor.add(Tensor)` is `add(other, 1)` (the alpha),
/// `Tensor.square()` is `pow(2)`, the `Tensor + double` operator converts the double, `AdamW.step` converts its
/// hyper-parameters for every parameter on every step. Nothing keeps such a temporary alive once its handle has been
/// read, so it has the same hazard as one made in the project's own code; the scalar check therefore also reports
/// every call to such a member.
///
/// A method "makes a scalar" when its body calls `Scalar`'s or `Tensor`'s implicit conversion from a number or
/// `ToScalar()` and uses the result, or when it calls (or takes a delegate to) a method of TorchSharp that does — the closure over
/// TorchSharp's own call graph.
module LLGBM.Tests.TorchSharpScalarMakers

open System.Collections.Generic
open Mono.Cecil
open Mono.Cecil.Cil
open Microsoft.CodeAnalysis

/// A method's identity shared by the IL and the compiler's symbols: declaring type (nested types joined by '/'),
/// metadata name and parameter type names (e.g. `TorchSharp.torch/Tensor::add(Tensor)`).
let private ilKey (m: MethodReference) =
    let parameters =
        m.Parameters |> Seq.map (fun p -> p.ParameterType.Name) |> String.concat ","

    $"{m.DeclaringType.FullName}::{m.Name}({parameters})"

let rec private typeKey (t: INamedTypeSymbol) =
    if isNull t.ContainingType then
        let ns = t.ContainingNamespace

        if isNull ns || ns.IsGlobalNamespace then
            t.MetadataName
        else
            $"{ns.ToDisplayString()}.{t.MetadataName}"
    else
        $"{typeKey t.ContainingType}/{t.MetadataName}"

let rec private parameterTypeName (t: ITypeSymbol) =
    match t with
    | :? IArrayTypeSymbol as a -> parameterTypeName a.ElementType + "[]"
    | :? IPointerTypeSymbol as p -> parameterTypeName p.PointedAtType + "*"
    | _ -> t.MetadataName

/// The key of a method symbol, as `ilKey` spells the same method.
let symbolKey (m: IMethodSymbol) =
    let m = m.OriginalDefinition

    let parameters =
        m.Parameters
        |> Seq.map (fun p -> parameterTypeName p.Type + (if p.RefKind = RefKind.None then "" else "&"))
        |> String.concat ","

    $"{typeKey m.ContainingType}::{m.MetadataName}({parameters})"

/// Whether an instruction makes a scalar (or a tensor) from a number that the method goes on using. One that is
/// returned at once (`eq(Scalar)` returns `false` as a tensor for a null argument) belongs to the caller.
let private isSource (i: Instruction) =
    match i.Operand with
    | :? MethodReference as r when i.OpCode = OpCodes.Call ->
        let declaring = r.DeclaringType.Name

        let converts =
            (r.Name = "op_Implicit"
             && (declaring = "Scalar" || declaring = "Tensor")
             && r.Parameters.Count = 1
             && r.Parameters[0].ParameterType.IsPrimitive)
            || (r.Name = "ToScalar" && declaring = "ScalarExtensionMethods")

        converts && not (isNull i.Next) && i.Next.OpCode <> OpCodes.Ret
    | _ -> false

let private isEdge (i: Instruction) =
    i.OpCode = OpCodes.Call
    || i.OpCode = OpCodes.Callvirt
    || i.OpCode = OpCodes.Newobj
    || i.OpCode = OpCodes.Ldftn
    || i.OpCode = OpCodes.Ldvirtftn

/// What the IL says: the keys of every TorchSharp method that makes a scalar, directly or through TorchSharp methods
/// it calls; the types with an override that does (a module's `forward`, an optimiser's `step`), which the check
/// reports where such an object is made; and how many methods were read.
type Makers = {
    Methods: IReadOnlySet<string>
    Types: IReadOnlySet<string>
    MethodsRead: int
}

let read (torchSharpAssembly: string) =
    use assembly = AssemblyDefinition.ReadAssembly torchSharpAssembly

    let methods = [
        for t in assembly.MainModule.GetTypes() do
            for m in t.Methods do
                if m.HasBody then
                    m
    ]

    let callees = Dictionary<string, MethodReference list>()
    let makers = HashSet<string>()

    for m in methods do
        if m.Body.Instructions |> Seq.exists isSource then
            makers.Add(ilKey m) |> ignore

        let calls = [
            for i in m.Body.Instructions do
                match i.Operand with
                | :? MethodReference as r when isEdge i -> r
                | _ -> ()
        ]

        callees[ilKey m] <- calls @ (callees.GetValueOrDefault(ilKey m, []))

    let mutable grown = true

    while grown do
        grown <- false

        for KeyValue(key, calls) in callees do
            if
                not (makers.Contains key)
                && calls |> List.exists (fun r -> makers.Contains(ilKey r))
            then
                makers.Add key |> ignore
                grown <- true

    let types =
        methods
        |> List.filter (fun m -> m.IsPublic && m.IsVirtual && not m.IsNewSlot && makers.Contains(ilKey m))
        |> List.map (fun m -> m.DeclaringType.FullName)
        |> HashSet

    {
        Methods = makers
        Types = types
        MethodsRead = methods.Length
    }

/// The key of a type symbol, as the IL spells it.
let typeSymbolKey (t: INamedTypeSymbol) = typeKey t
