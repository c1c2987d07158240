using System.Text.Json;
using LLGBM.Generators;
using static TorchSharp.torch;

namespace LLGBM.Experiments;

/// <summary>Whether one run's predictor can drive another run's decoder, and why not when it cannot.</summary>
/// <param name="Composable">Whether the two compose.</param>
/// <param name="Reason">What makes them compose, or the first thing that prevents it.</param>
public sealed record TransferCompatibility(bool Composable, string Reason);

/// <summary>
/// The cross-backbone transfer evaluation (<c>llgbm generator transfer</c>): a predictor run's δ̂ decoded by a decoder
/// run's decoder, evaluated on the decoder run's tasks and backbone next to the decoder run itself (<c>native</c>) and the
/// reference methods of that backbone (its base model, oracle teachers, mean teacher, random adapter).
/// </summary>
/// <param name="Predictor">The predictor run directory.</param>
/// <param name="Decoder">The decoder run directory.</param>
/// <param name="PredictorKind">The predictor run's delta kind.</param>
/// <param name="DecoderKind">The decoder run's delta kind.</param>
/// <param name="PredictorDeltaDim">The width of the predictor's deltas.</param>
/// <param name="DecoderDeltaDim">The width of the decoder's deltas.</param>
/// <param name="PredictorHiddenSize">The predictor run's backbone width (null when the run does not record it).</param>
/// <param name="DecoderHiddenSize">The decoder run's backbone width (null when the run does not record it).</param>
/// <param name="Composable">Whether the two compose; when not, <paramref name="Results"/> is empty.</param>
/// <param name="Reason">Why they compose or not.</param>
/// <param name="Step">The decoder run's checkpoint step evaluated (0 when not composable).</param>
/// <param name="Results">
/// Per method and task on the decoder run's backbone: <c>transfer</c> (δ̂ moved to the decoder run's per-coordinate
/// scale, see <see cref="TransferredGenerator"/>), <c>transfer-raw</c> (δ̂ decoded as predicted), <c>native</c> (the
/// decoder run's own generator),
/// <c>base</c>, <c>oracle</c>, <c>mean-teacher</c>, <c>random</c>; held-out and in-domain splits.
/// </param>
/// <param name="PredictorOwn">The predictor run's own final evaluation on its backbone (its <c>generated</c> rows), when written.</param>
public sealed record TransferResult(
    string Predictor, string Decoder, string PredictorKind, string DecoderKind, int PredictorDeltaDim, int DecoderDeltaDim,
    int? PredictorHiddenSize, int? DecoderHiddenSize, bool Composable, string Reason, int Step,
    IReadOnlyList<MethodTaskResult> Results, IReadOnlyList<MethodTaskResult> PredictorOwn);

/// <summary>Composes one two-stage run's predictor with another's decoder and evaluates the composition.</summary>
public static class GeneratorTransfer
{
    static readonly JsonSerializerOptions ResultsJson = new(GeneratorConfig.JsonOptions)
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>
    /// Whether the predictor of run <paramref name="predictor"/> (config <paramref name="predictorConfig"/>) can drive the
    /// decoder of run <paramref name="decoder"/>: both two-stage, conditions of the same encoder, width and content, and
    /// deltas of the same kind, width and coordinates. Delta activations of backbones of different width or depth never
    /// compose: each coordinate is a hidden unit of its own backbone.
    /// </summary>
    public static TransferCompatibility Check(
        GeneratorConfig predictorConfig, GeneratorRun.RunInfo predictor, GeneratorConfig decoderConfig, GeneratorRun.RunInfo decoder)
    {
        static TransferCompatibility No(string reason) => new(false, reason);
        if (predictorConfig.Variant != GeneratorVariant.TwoStage)
            return No($"the predictor run ({predictorConfig.Name}) is a {predictorConfig.Variant} run, not TwoStage: it has no delta predictor.");
        if (decoderConfig.Variant != GeneratorVariant.TwoStage)
            return No($"the decoder run ({decoderConfig.Name}) is a {decoderConfig.Variant} run, not TwoStage: it has no delta decoder.");
        if (predictor.Encoder != decoder.Encoder || predictor.ConditionDim != decoder.ConditionDim)
            return No(
                $"the runs encode conditions differently ({predictor.Encoder}, width {predictor.ConditionDim} against {decoder.Encoder}, " +
                $"width {decoder.ConditionDim}).");
        if (predictorConfig.ConditionMode != decoderConfig.ConditionMode)
            return No($"the runs' conditions hold different things ({predictorConfig.ConditionMode} against {decoderConfig.ConditionMode}).");
        if (predictor.DeltaKind != decoder.DeltaKind)
            return No($"the predictor emits {predictor.DeltaKind} deltas and the decoder reads {decoder.DeltaKind} deltas.");
        if (predictor.DeltaKind == Delta.DeltaKind.Activation && (predictor.DeltaDim != decoder.DeltaDim || predictor.HiddenSize != decoder.HiddenSize))
            return No(
                $"activation deltas live in each backbone's hidden space: the predictor emits deltas of width {predictor.DeltaDim} "
                + $"(hidden size {Show(predictor.HiddenSize)}), "
                + $"the decoder reads deltas of width {decoder.DeltaDim} (hidden size {Show(decoder.HiddenSize)}); "
                + $"no map between the two spaces exists without paired data to fit one.");
        if (predictor.DeltaDim != decoder.DeltaDim)
            return No($"the predictor emits deltas of width {predictor.DeltaDim} and the decoder reads deltas of width {decoder.DeltaDim}.");
        if (predictor.DeltaCoordinates is null || decoder.DeltaCoordinates is null || predictor.DeltaCoordinates != decoder.DeltaCoordinates)
            return No(predictor.DeltaKind == Delta.DeltaKind.Activation
                ? "the runs' activation deltas are not of the same backbone and probes (activation coordinates are one backbone's hidden units)."
                : "the runs' meaning deltas are not of the same (prompt, continuation) pairs, so their coordinates differ.");
        return new(true, predictor.DeltaKind == Delta.DeltaKind.Meaning
            ? $"both runs' deltas are meaning deltas of the same {predictor.DeltaDim} (prompt, continuation) pairs, whatever the backbones."
            : $"both runs' deltas are activation deltas of the same backbone shape and probes (width {predictor.DeltaDim}).");
    }

    static string Show(int? value) => value?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown";

    /// <summary>
    /// Checks the two runs and, when they compose, evaluates the predictor of <paramref name="predictorRun"/> driving the
    /// decoder of <paramref name="decoderRun"/> (each at its latest checkpoint) on the decoder run's tasks, base model and
    /// teachers, with the decoder run's evaluation settings and conditions (encoded with <paramref name="openEncoding"/>,
    /// which must be the runs' encoder; opened only when the runs compose).
    /// </summary>
    public static TransferResult Evaluate(
        string predictorRun, string decoderRun, Func<ConditionEncoding> openEncoding, Action<string>? log = null, Device? device = null)
    {
        var predictorConfig = GeneratorConfig.Load(Path.Combine(predictorRun, GeneratorRun.ConfigFile));
        var decoderConfig = GeneratorConfig.Load(Path.Combine(decoderRun, GeneratorRun.ConfigFile));
        var predictor = GeneratorRun.ReadRunFile(predictorRun);
        var decoder = GeneratorRun.ReadRunFile(decoderRun);
        var check = Check(predictorConfig, predictor, decoderConfig, decoder);
        var own = OwnResults(predictorRun);
        TransferResult Result(int step, IReadOnlyList<MethodTaskResult> results) => new(
            predictorRun, decoderRun, predictor.DeltaKind.ToString(), decoder.DeltaKind.ToString(), predictor.DeltaDim, decoder.DeltaDim,
            predictor.HiddenSize, decoder.HiddenSize, check.Composable, check.Reason, step, results, own);
        log?.Invoke($"{(check.Composable ? "composable" : "not composable")}: {check.Reason}");
        if (!check.Composable)
            return Result(0, []);
        var encoding = openEncoding();
        if (decoder.Encoder != encoding.Identity)
            throw new LlgbmException($"{decoderRun}: the run was trained with encoder {decoder.Encoder}, not {encoding.Identity}.");
        using var data = GeneratorData.Load(decoder.Inputs, decoderConfig, encoding.Encode, encoding.Identity, log, device);
        if (data.DeltaCoordinates != predictor.DeltaCoordinates)
            throw new LlgbmException($"{decoderRun}: its inputs now give delta coordinates other than those the run recorded; train the run again.");
        var step = GeneratorCheckpoint.LatestStep(decoderRun) ?? throw new LlgbmException($"{decoderRun}: the run has no checkpoint yet.");
        var predictorModel = Model.Qwen2Config.Load(Path.Combine(predictor.Inputs.Base, "config.json"));
        using var first = GeneratorRun.LoadGenerator(predictorRun, predictorModel, device: device);
        using var second = GeneratorRun.LoadGenerator(decoderRun, data.Model.Config, step, device);
        log?.Invoke($"transfer: {predictorRun} (predictor) → {decoderRun} (decoder, step {step}), δ̂ moved to the decoder run's per-coordinate scale");
        var transfer = GeneratorRun.Evaluate(GeneratorFactory.Transferred(first, second, standardize: true),
            data, decoderConfig, step, withReferences: true, log, GeneratorRun.ReferenceCache(decoderRun));
        var results = transfer.Results.Select(r => r.Method == "generated" ? r with { Method = "transfer" } : r).ToList();
        log?.Invoke("transfer: δ̂ decoded as predicted (raw)");
        var raw = GeneratorRun.Evaluate(
            GeneratorFactory.Transferred(first, second), data, decoderConfig, step, withReferences: false, log);
        results.AddRange(raw.Results.Select(r => r with { Method = "transfer-raw" }));
        var heldOut = Path.Combine(decoderRun, GeneratorRun.ResultsFolder, GeneratorRun.HeldOutFile);
        IReadOnlyList<MethodTaskResult> native;
        if (File.Exists(heldOut) && GeneratorRun.ReadResults(heldOut) is { } written && written.Step == step)
            native = [.. written.Results.Where(r => r.Method == "generated")];
        else
        {
            log?.Invoke($"native: {decoderRun} at step {step}");
            native = [.. GeneratorRun.Evaluate(second, data, decoderConfig, step, withReferences: false, log).Results];
        }
        results.AddRange(native.Select(r => r with { Method = "native" }));
        return Result(step, results);
    }

    static IReadOnlyList<MethodTaskResult> OwnResults(string run)
    {
        var path = Path.Combine(run, GeneratorRun.ResultsFolder, GeneratorRun.HeldOutFile);
        return File.Exists(path) ? [.. GeneratorRun.ReadResults(path).Results.Where(r => r.Method == "generated")] : [];
    }

    /// <summary>Writes a transfer result as JSON (atomically).</summary>
    public static void Write(string path, TransferResult result)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        AtomicFile.Write(path, stream => JsonSerializer.Serialize(stream, result, ResultsJson));
    }

    /// <summary>Reads a transfer result written by <see cref="Write"/>.</summary>
    public static TransferResult Read(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<TransferResult>(File.ReadAllText(path), ResultsJson)
                ?? throw new LlgbmException($"{path}: expected a transfer result object.");
        }
        catch (JsonException e)
        {
            throw new LlgbmException($"{path}: not a transfer result ({e.Message}).");
        }
    }
}
