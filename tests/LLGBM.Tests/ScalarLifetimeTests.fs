/// The guard for the lifetime of TorchSharp scalars in code that runs in loops. A number passed where TorchSharp wants a
/// `Scalar` (`x.pow(2)`, `x.clamp_min(1e-12)`, `x * 0.5`, …) becomes a temporary native scalar whose only owner is the
/// call: once its handle has been read nothing keeps the managed object alive, so a garbage collection can finalize it —
/// freeing the native scalar — while libtorch still reads it (libtorch's "false INTERNAL ASSERT FAILED at
/// c10/core/Scalar.h"; dotnet/TorchSharp pull requests 1434 and 1496). The hot paths therefore pass scalars they own:
/// a field of the module (disposed with it) or a `using` local that outlives the call — or use an operation that needs
/// no scalar (`x.mul(x)`, `neg()`, `reciprocal()`). TorchSharp members that make a scalar themselves (`add(Tensor)` is
/// `add(other, 1)`, `square()` is `pow(2)`; see TorchSharpScalarMakers.fs) are reported too: the hot paths call the
/// overload that takes the scalar, with one they own.
///
/// C# is checked with the compiler's semantic model (Roslyn): the hot-path sources are compiled against the built
/// assemblies and every operation that makes a `Scalar` or `Tensor` out of a number without an owner is reported.
/// F# (LLGBM.Algebra) is checked by its compiler: LLGBM.Algebra.fsproj turns on warning 3395 (an `op_Implicit`
/// conversion at a method argument, e.g. `t.pow 2.0`) next to the default 3391, and warnings are errors; the explicit
/// `.ToScalar()` calls there are checked below to be `use` bindings.
module LLGBM.Tests.ScalarLifetimeTests

open System
open System.IO
open System.Reflection
open System.Text.RegularExpressions
open Microsoft.CodeAnalysis
open Microsoft.CodeAnalysis.CSharp
open Microsoft.CodeAnalysis.Operations
open Expecto

let private repository = Repository.root

/// The folders whose code runs per step, per token or per tensor: every C# file under them is checked.
let hotFolders = [
    "src/LLGBM.Core/Model"
    "src/LLGBM.Core/Lora"
    "src/LLGBM.Core/Delta"
    "src/LLGBM.Core/Generators"
    "src/LLGBM.Core/Evaluation"
    "src/LLGBM.Core/Training"
    "src/LLGBM.Core/Conditioning"
    "src/LLGBM.Core/Pretraining"
    "src/LLGBM.Core/Teachers"
    "src/LLGBM.Core/Text"
    "src/LLGBM.Core/Checkpoints"
    "src/LLGBM.Experiments"
]

/// Files under the hot folders that may keep an implicit scalar, each with the reason it runs once, not in a loop.
let allowList: Map<string, string> = Map.empty

/// One place where a number becomes a TorchSharp scalar or tensor with no owner.
type Finding = {
    File: string
    Line: int
    Code: string
    Why: string
} with

    override f.ToString() = $"{f.File}:{f.Line}: {f.Why}: {f.Code}"

let private isTorchSharp (t: ITypeSymbol) =
    not (isNull t)
    && not (isNull t.ContainingNamespace)
    && t.ContainingNamespace.ToDisplayString() = "TorchSharp"

let private isScalar (t: ITypeSymbol) = isTorchSharp t && t.Name = "Scalar"

let private isTensor (t: ITypeSymbol) =
    not (isNull t)
    && t.Name = "Tensor"
    && not (isNull t.ContainingType)
    && t.ContainingType.Name = "torch"
    && isTorchSharp t.ContainingType

let private isNumber (t: ITypeSymbol) =
    not (isNull t)
    && (match t.SpecialType with
        | SpecialType.System_Byte
        | SpecialType.System_SByte
        | SpecialType.System_Int16
        | SpecialType.System_Int32
        | SpecialType.System_Int64
        | SpecialType.System_Single
        | SpecialType.System_Double
        | SpecialType.System_Boolean -> true
        | _ -> false)

/// Whether the object an operation creates is owned beyond the call: the value of a `using` local, or stored in a
/// field or property (the object holding it disposes it).
let private owned (op: IOperation) =
    match op.Parent with
    | :? IVariableInitializerOperation as init ->
        match init.Parent with
        | :? IVariableDeclaratorOperation as declarator ->
            match declarator.Parent with
            | :? IVariableDeclarationOperation as declaration ->
                match declaration.Parent with
                | :? IVariableDeclarationGroupOperation as group ->
                    (group.Parent :? IUsingDeclarationOperation)
                    || (group.Parent :? IUsingOperation)
                | :? IUsingOperation -> true
                | _ -> false
            | _ -> false
        | _ -> false
    | :? IFieldInitializerOperation
    | :? IPropertyInitializerOperation -> true
    | :? ISimpleAssignmentOperation as assignment when Object.ReferenceEquals(assignment.Value, op) ->
        (assignment.Target :? IFieldReferenceOperation)
        || (assignment.Target :? IPropertyReferenceOperation)
    | _ -> false

/// The TorchSharp members that make scalars of their own, read once from the TorchSharp assembly the tests run with.
let private makers =
    lazy (TorchSharpScalarMakers.read typeof<TorchSharp.Scalar>.Assembly.Location)

let private isTorchSharpMember (m: IMethodSymbol) =
    not (isNull m)
    && not (isNull m.ContainingNamespace)
    && m.ContainingNamespace.ToDisplayString().StartsWith "TorchSharp"

let private makesScalar (m: IMethodSymbol) =
    isTorchSharpMember m
    && makers.Value.Methods.Contains(TorchSharpScalarMakers.symbolKey m)

let private inside (m: IMethodSymbol) =
    $"TorchSharp's {m.ContainingType.Name}.{m.Name}({String.Join(',', m.Parameters |> Seq.map (fun p -> p.Type.Name))}) makes a Scalar inside the library"

/// The reason an operation makes an unowned scalar or tensor out of a number, if it does: in the project's code, or
/// inside a TorchSharp member it calls.
let private unowned (op: IOperation) : string option =
    match op with
    | :? IConversionOperation as c when
        not (isNull c.OperatorMethod)
        && (isScalar c.Type || isTensor c.Type)
        && not (isScalar c.Operand.Type || isTensor c.Operand.Type)
        && not (owned c)
        ->
        Some $"{c.Operand.Type} converted to {c.Type.Name} with no owner"
    | :? IInvocationOperation as i when i.TargetMethod.Name = "ToScalar" && isScalar i.Type && not (owned i) ->
        Some "ToScalar() with no owner (use a field or a `using` local)"
    | :? IBinaryOperation as b when
        not (isNull b.OperatorMethod)
        && isTensor b.OperatorMethod.ContainingType
        && b.OperatorMethod.Parameters |> Seq.exists (fun p -> isNumber p.Type)
        ->
        Some $"TorchSharp's operator {b.OperatorKind} makes a Scalar from the number"
    | :? ICompoundAssignmentOperation as a when
        not (isNull a.OperatorMethod)
        && isTensor a.OperatorMethod.ContainingType
        && a.OperatorMethod.Parameters |> Seq.exists (fun p -> isNumber p.Type)
        ->
        Some $"TorchSharp's operator {a.OperatorKind}= makes a Scalar from the number"
    | :? IInvocationOperation as i when makesScalar i.TargetMethod -> Some(inside i.TargetMethod)
    | :? IObjectCreationOperation as c when makesScalar c.Constructor -> Some(inside c.Constructor)
    | :? IMethodReferenceOperation as r when makesScalar r.Method -> Some(inside r.Method)
    | :? IBinaryOperation as b when makesScalar b.OperatorMethod -> Some(inside b.OperatorMethod)
    | :? ICompoundAssignmentOperation as a when makesScalar a.OperatorMethod -> Some(inside a.OperatorMethod)
    | :? IUnaryOperation as u when makesScalar u.OperatorMethod -> Some(inside u.OperatorMethod)
    | made when
        (made :? IInvocationOperation || made :? IObjectCreationOperation)
        && (match made.Type with
            | :? INamedTypeSymbol as t -> makers.Value.Types.Contains(TorchSharpScalarMakers.typeSymbolKey t)
            | _ -> false)
        ->
        Some $"TorchSharp's {made.Type.Name} makes Scalars inside the library (e.g. in forward or step)"
    | _ -> None

/// The assemblies a compilation of the project's sources references: the running framework and every managed
/// assembly next to the tests, except `excluded` (the assembly being compiled from source).
let private references (excluded: string list) =
    let framework =
        (AppContext.GetData "TRUSTED_PLATFORM_ASSEMBLIES" :?> string).Split Path.PathSeparator
        |> Array.toList

    let local =
        Directory.GetFiles(AppContext.BaseDirectory, "*.dll")
        |> Array.filter (fun p ->
            not (List.contains (Path.GetFileNameWithoutExtension p) excluded)
            && (try
                    AssemblyName.GetAssemblyName p |> ignore
                    true
                with _ ->
                    false))
        |> Array.toList

    let localNames = local |> List.map Path.GetFileName |> set

    (framework
     |> List.filter (fun p -> not (localNames.Contains(Path.GetFileName p))))
    @ local
    |> List.map (fun p -> MetadataReference.CreateFromFile p :> MetadataReference)

let private parseOptions = CSharpParseOptions(LanguageVersion.Preview)

/// The global usings the SDK adds to a project with ImplicitUsings.
let private implicitUsings =
    CSharpSyntaxTree.ParseText(
        "global using System; global using System.Collections.Generic; global using System.IO; "
        + "global using System.Linq; global using System.Net.Http; global using System.Threading; "
        + "global using System.Threading.Tasks;",
        parseOptions
    )

/// Compiles C# sources (path, text) as the assembly `name`, failing on compile errors (the semantic model of a
/// broken compilation would not be trustworthy).
let compile (name: string) (kind: OutputKind) (excluded: string list) (sources: (string * string) list) =
    let trees =
        implicitUsings
        :: [
            for path, text in sources -> CSharpSyntaxTree.ParseText(text, parseOptions, path)
        ]

    let options =
        CSharpCompilationOptions(kind, nullableContextOptions = NullableContextOptions.Enable, allowUnsafe = true)

    let compilation =
        CSharpCompilation.Create(name, trees, references excluded, options)

    let errors =
        compilation.GetDiagnostics()
        // CS8795: a [GeneratedRegex] partial method, whose other part the regex source generator writes; generated code
        // is not part of the check.
        |> Seq.filter (fun d -> d.Severity = DiagnosticSeverity.Error && d.Id <> "CS8795")
        |> Seq.truncate 5
        |> Seq.map string
        |> Seq.toList

    if not errors.IsEmpty then
        failtestf "compiling %s for the scalar check failed:\n%s" name (String.Join("\n", errors))

    compilation

/// Every unowned scalar made from a number in the given files of a compilation.
let findings (compilation: CSharpCompilation) (files: string list) =
    [
        for tree in compilation.SyntaxTrees do
            if List.contains tree.FilePath files then
                let model = compilation.GetSemanticModel(tree, false)

                let roots =
                    tree.GetRoot().DescendantNodes()
                    |> Seq.choose (fun n ->
                        match model.GetOperation(n) with
                        | null -> None
                        | (op: IOperation) when isNull op.Parent -> Some op
                        | _ -> None)

                for root in roots do
                    for op in Seq.append [ root ] (root.Descendants()) do
                        match unowned op with
                        | Some why ->
                            let line = op.Syntax.GetLocation().GetLineSpan().StartLinePosition.Line + 1

                            {
                                File = tree.FilePath
                                Line = line
                                Code = op.Syntax.ToString()
                                Why = why
                            }
                        | None -> ()
    ]
    |> List.distinct

let private relative (path: string) =
    Path.GetRelativePath(repository, path).Replace('\\', '/')

let private sourcesOf (project: string) =
    Directory.GetFiles(Path.Combine(repository, project), "*.cs", SearchOption.AllDirectories)
    |> Array.filter (fun p ->
        let r = relative p
        not (r.Contains "/obj/" || r.Contains "/bin/"))
    |> Array.map (fun p -> relative p, File.ReadAllText p)
    |> Array.toList

let private isHot (file: string) =
    hotFolders |> List.exists (fun f -> file.StartsWith(f + "/"))

/// The findings in a project's hot-path files that the allow-list does not cover, and how many files were checked.
let private projectFindings (project: string) (assembly: string) (kind: OutputKind) =
    let sources = sourcesOf project
    let compilation = compile assembly kind [ assembly ] sources

    let hot =
        sources
        |> List.map fst
        |> List.filter (fun f -> isHot f && not (allowList.ContainsKey f))

    findings compilation hot, hot.Length

/// A small C# file using TorchSharp, for the planted violations.
let private snippet (body: string) =
    "using TorchSharp; using static TorchSharp.torch;\n"
    + "sealed class Planted : System.IDisposable {\n"
    + body
    + "\npublic void Dispose() { }\n}"

let private plantedFindings (body: string) =
    let compilation =
        compile "Planted" OutputKind.DynamicallyLinkedLibrary [] [ "Planted.cs", snippet body ]

    findings compilation [ "Planted.cs" ]

[<Tests>]
let tests =
    testList "ScalarLifetime" [
        test "A planted x.pow(2) is flagged" {
            let found = plantedFindings "public Tensor F(Tensor x) => x.pow(2);"
            Expect.equal found.Length 1 $"one finding, got {found}"
            Expect.stringContains found[0].Why "converted to Scalar" "the implicit conversion is named"
        }

        test "Planted numeric operators, clamp_min, masked_fill and inline ToScalar are each flagged" {
            let found =
                plantedFindings (
                    "public Tensor A(Tensor x) => x * 0.5;\n"
                    + "public Tensor B(Tensor x) => 1.0 - x;\n"
                    + "public Tensor C(Tensor x) => x.clamp_min(1e-12);\n"
                    + "public Tensor D(Tensor x, Tensor m) => x.masked_fill(m, double.NegativeInfinity);\n"
                    + "public Tensor E(Tensor x) => x.pow(2.0.ToScalar());\n"
                    + "public Tensor G(Tensor x) { x += 1; return x; }\n"
                    + "public Tensor H(Tensor x) { var s = 3.ToScalar(); return x.mul(s); }"
                )

            Expect.equal
                (found |> List.map (fun f -> f.Line) |> List.sort)
                [ 3; 4; 5; 6; 7; 8; 9 ]
                $"one finding on each planted line, got {found}"
        }

        test "Members that make a Scalar inside TorchSharp are flagged: add(Tensor), square(), Tensor + Tensor, AdamW" {
            let found =
                plantedFindings (
                    "public Tensor A(Tensor x, Tensor y) => x.add(y);\n"
                    + "public Tensor B(Tensor x) => x.square();\n"
                    + "public Tensor C(Tensor x, Tensor y) => x + y;\n"
                    + "public Tensor D(Tensor x, Scalar s) => x.add_(s);\n"
                    + "public void E(TorchSharp.Modules.Parameter p) { using var o = optim.AdamW(new[] { p }); }"
                )

            Expect.equal
                (found |> List.map (fun f -> f.Line) |> List.distinct |> List.sort)
                [ 3; 4; 5; 6; 7 ]
                $"one finding on each planted line, got {found}"

            Expect.stringContains found[0].Why "inside the library" "the finding says the scalar is TorchSharp's"
        }

        test "The IL reading finds the known makers and not the forms with explicit scalars" {
            let m = makers.Value
            Expect.isGreaterThan m.MethodsRead 10000 "TorchSharp's methods were read"

            for known in
                [
                    "TorchSharp.torch/Tensor::add(Tensor)"
                    "TorchSharp.torch/Tensor::square()"
                    "TorchSharp.torch/Tensor::op_Addition(Tensor,Tensor)"
                ] do
                Expect.isTrue (m.Methods.Contains known) $"{known} makes a scalar"

            for clean in
                [
                    "TorchSharp.torch/Tensor::add(Tensor,Scalar)"
                    "TorchSharp.torch/Tensor::mul(Tensor)"
                    "TorchSharp.torch/Tensor::pow(Scalar)"
                    "TorchSharp.torch/Tensor::sub(Tensor)"
                ] do
                Expect.isFalse (m.Methods.Contains clean) $"{clean} passes its scalars through"

            Expect.isTrue (m.Types.Contains "TorchSharp.Modules.AdamW") "AdamW's step makes scalars"
        }

        test "The explicit forms are not flagged: a field scalar, a using local, an operation without a scalar" {
            let found =
                plantedFindings (
                    "readonly Scalar two = 2.ToScalar();\n"
                    + "Scalar? three;\n"
                    + "public Planted() { three = 3.ToScalar(); }\n"
                    + "public Tensor A(Tensor x) => x.pow(two);\n"
                    + "public Tensor B(Tensor x) { using var s = 2.ToScalar(); return x.pow(s); }\n"
                    + "public Tensor C(Tensor x) { using (var s = 0.5.ToScalar()) { return x * s; } }\n"
                    + "public Tensor D(Tensor x) => x.mul(x) * x.neg().reciprocal();\n"
                    + "public Tensor E(Tensor x) => x.sum(-1, keepdim: true) * x.reshape(2, 3);"
                )

            Expect.isEmpty found "no findings for the explicit forms"
        }

        test "The allow-list names files that exist under the hot folders" {
            for KeyValue(file, reason) in allowList do
                Expect.isTrue (File.Exists(Path.Combine(repository, file))) $"{file} exists"
                Expect.isTrue (isHot file) $"{file} lies under a hot folder"
                Expect.isNotEmpty reason $"{file} has a reason"
        }

        test "No unowned scalar made from a number in LLGBM.Core's hot paths" {
            let found, checkedFiles =
                projectFindings "src/LLGBM.Core" "LLGBM.Core" OutputKind.DynamicallyLinkedLibrary

            Expect.isGreaterThan checkedFiles 50 "the hot folders hold the model, LoRA, delta and generator code"
            Expect.isEmpty found (String.Join("\n", found))
        }

        test "No unowned scalar made from a number in the experiments and benchmarks" {
            let found, checkedFiles =
                projectFindings "src/LLGBM.Experiments" "LLGBM.Experiments" OutputKind.DynamicallyLinkedLibrary

            Expect.isGreaterThan checkedFiles 20 "the experiments, studies and benchmarks are checked"
            Expect.isEmpty found (String.Join("\n", found))
        }

        test "Every ToScalar() in LLGBM.Algebra is a `use` binding" {
            let algebra = Path.Combine(repository, "src", "LLGBM.Algebra")
            let useBinding = Regex @"^\s*use\s+\w+\s*=\s*[^\n]*\.ToScalar\s*\(\s*\)\s*$"

            let loose = [
                for file in Directory.GetFiles(algebra, "*.fs") do
                    for i, line in Array.indexed (File.ReadAllLines file) do
                        if line.Contains ".ToScalar" && not (useBinding.IsMatch line) then
                            $"{relative file}:{i + 1}: {line.Trim()}"
            ]

            Expect.isEmpty loose (String.Join("\n", loose))
        }
    ]
