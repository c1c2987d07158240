using System.Globalization;
using System.Text.Json;
using LLGBM.Checkpoints;
using LLGBM.Lora;
using LLGBM.Teachers;
using LLGBM.Text;
using static TorchSharp.torch;

namespace LLGBM.Delta;

/// <summary>One delta of the cache, as listed in a cache manifest.</summary>
/// <param name="Task">The teacher's task.</param>
/// <param name="Domain">The task's domain.</param>
/// <param name="Step">The training step the adapter was kept at.</param>
/// <param name="Adapter">The adapter directory, relative to the teacher pool's root.</param>
/// <param name="Key">The entry's key: <c>deltas/KEY.safetensors</c> under the cache directory.</param>
/// <param name="Norm">The L2 norm of the delta.</param>
public sealed record DeltaCacheEntry(string Task, string Domain, int Step, string Adapter, string Key, double Norm);

/// <summary>A loaded delta (see <see cref="DeltaCache.Load(string, string, DeltaMeasure)"/>); owns its tensor.</summary>
/// <param name="Task">The teacher's task.</param>
/// <param name="Domain">The task's domain.</param>
/// <param name="Step">The training step the adapter was kept at.</param>
/// <param name="Adapter">The adapter directory, relative to the teacher pool's root.</param>
/// <param name="Delta">The delta, float32 [D] on the CPU.</param>
public sealed record LoadedDelta(string Task, string Domain, int Step, string Adapter, Tensor Delta) : IDisposable
{
    /// <inheritdoc/>
    public void Dispose() => Delta.Dispose();
}

/// <summary>Progress of <see cref="DeltaCache.Compute(string, string, string, DeltaMeasure, int, int, Action{DeltaCacheProgress}?, Device?, ScalarType)"/>: one
/// per adapter of the shard, after it is done.</summary>
/// <param name="Done">Adapters of the shard done so far (this one included).</param>
/// <param name="Total">Adapters in the shard.</param>
/// <param name="Adapter">The adapter directory, relative to the pool's root.</param>
/// <param name="Reused">Whether its entry already existed.</param>
/// <param name="ReplacedBroken">
/// Whether an entry existed but was broken (a NaN or infinite value or norm, left by an older version) and was computed
/// again.
/// </param>
public sealed record DeltaCacheProgress(int Done, int Total, string Adapter, bool Reused, bool ReplacedBroken = false);

/// <summary>Norm statistics of a set of deltas.</summary>
/// <param name="Count">The number of deltas.</param>
/// <param name="MeanNorm">Mean L2 norm (0 when there are none).</param>
/// <param name="MinNorm">Smallest L2 norm (0 when there are none).</param>
/// <param name="MaxNorm">Largest L2 norm (0 when there are none).</param>
/// <param name="MedianNorm">Median L2 norm (0 when there are none).</param>
/// <param name="Outliers">
/// Deltas whose norm is more than <see cref="DeltaCache.OutlierDeviations"/> robust deviations from the median; the
/// robust deviation is 1.4826 × the median absolute deviation (none are flagged when it is 0).
/// </param>
/// <param name="Broken">
/// Deltas that are practically zero (norm below <see cref="DeltaCache.BrokenFraction"/> × the median, or exactly
/// 0): adapters that change nothing, such as an untrained one with B = 0.
/// </param>
public sealed record DeltaNormStats(
    int Count, double MeanNorm, double MinNorm, double MaxNorm, double MedianNorm,
    IReadOnlyList<DeltaCacheEntry> Outliers, IReadOnlyList<DeltaCacheEntry> Broken)
{
    /// <summary>The statistics of <paramref name="entries"/>.</summary>
    public static DeltaNormStats Of(IReadOnlyList<DeltaCacheEntry> entries)
    {
        if (entries.Count == 0)
            return new(0, 0, 0, 0, 0, [], []);
        var norms = entries.Select(e => e.Norm).ToList();
        var median = Median(norms);
        var deviation = 1.4826 * Median([.. norms.Select(n => Math.Abs(n - median))]);
        var outliers = deviation > 0
            ? entries.Where(e => Math.Abs(e.Norm - median) > DeltaCache.OutlierDeviations * deviation).ToList()
            : [];
        var broken = entries.Where(e => e.Norm == 0 || e.Norm < DeltaCache.BrokenFraction * median).ToList();
        return new(entries.Count, norms.Average(), norms.Min(), norms.Max(), median, outliers, broken);
    }

    static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToList();
        var mid = sorted.Count / 2;
        return sorted.Count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}

/// <summary>What <see cref="DeltaCache.Compute(string, string, string, DeltaMeasure, int, int, Action{DeltaCacheProgress}?, Device?, ScalarType)"/>
/// did.</summary>
/// <param name="Shard">The shard's adapters, in the shard's order.</param>
/// <param name="Computed">Entries computed and written by this call.</param>
/// <param name="Reused">Entries of the shard that already existed.</param>
/// <param name="Manifest">Every entry of the manifest rebuilt at the end (all shards' entries present).</param>
/// <param name="Stats">Norm statistics of <paramref name="Manifest"/>.</param>
/// <param name="ManifestPath">The manifest's path.</param>
public sealed record DeltaCacheResult(
    IReadOnlyList<DeltaCacheEntry> Shard, int Computed, int Reused, IReadOnlyList<DeltaCacheEntry> Manifest, DeltaNormStats Stats, string ManifestPath);

/// <summary>
/// A content-addressed cache of the teacher pool's deltas, of either kind (<see cref="DeltaMeasure"/>). Each entry is
/// keyed by the SHA-256 of four content hashes — the base checkpoint (<see cref="ContentHash.OfCheckpoint"/>), the
/// tokenized probes (<see cref="DeltaMeasure.ProbesHash"/>), the spec (<see cref="ContentHash.OfText"/> of
/// <see cref="DeltaMeasure.SpecKey"/>, which tells the kinds apart) and the adapter (<see cref="AdapterHash"/>) — so a
/// changed input gives a new key and never reads a stale entry. Entries are
/// <c>deltas/KEY.safetensors</c> files with one float32 tensor <c>delta</c> [D] and metadata naming the four hashes,
/// the task, domain, step and adapter. The manifest of one (base, probes, spec) is
/// <c>manifests/CONTEXT.jsonl</c>, CONTEXT the SHA-256 of the first three hashes (<see cref="ContextKey"/>): one
/// <see cref="DeltaCacheEntry"/> per line.
/// </summary>
public static class DeltaCache
{
    /// <summary>The folder of the entries under the cache directory.</summary>
    public const string DeltasFolder = "deltas";

    /// <summary>The folder of the manifests under the cache directory.</summary>
    public const string ManifestsFolder = "manifests";

    /// <summary>The name of the delta tensor in an entry file.</summary>
    public const string TensorName = "delta";

    /// <summary>Robust deviations from the median beyond which a norm is an outlier.</summary>
    public const double OutlierDeviations = 3.0;

    /// <summary>A delta whose norm is below this fraction of the median is reported as broken.</summary>
    public const double BrokenFraction = 1e-6;

    static JsonSerializerOptions LineOptions => LlgbmJson.Line;

    /// <summary>
    /// The hash of tokenized probes: their token ids and, when given, their texts (so that the same ids from different
    /// texts, or a changed tokenizer, are told apart).
    /// </summary>
    public static string ProbesHash(IReadOnlyList<IReadOnlyList<int>> tokens, IReadOnlyList<string>? texts = null) =>
        ContentHash.OfText(JsonSerializer.Serialize(new { texts, ids = tokens }));

    /// <summary>The hash of a PEFT adapter directory: its <c>adapter_model.safetensors</c> and <c>adapter_config.json</c>.</summary>
    public static string AdapterHash(string adapterDir)
    {
        foreach (var name in new[] { PeftAdapter.WeightsFileName, PeftAdapter.ConfigFileName })
            if (!File.Exists(Path.Combine(adapterDir, name)))
                throw new LlgbmException($"{adapterDir}: no {name}; not a PEFT adapter directory.");
        return ContentHash.OfFiles(adapterDir, [PeftAdapter.WeightsFileName, PeftAdapter.ConfigFileName]);
    }

    /// <summary>The key of the (base, probes, spec) context: the SHA-256 of the three hashes.</summary>
    public static string ContextKey(string baseHash, string probesHash, string specHash) =>
        ContentHash.OfText($"base {baseHash}\nprobes {probesHash}\nspec {specHash}");

    /// <summary>The key of an entry: the SHA-256 of the four hashes.</summary>
    public static string EntryKey(string baseHash, string probesHash, string specHash, string adapterHash) =>
        ContentHash.OfText($"base {baseHash}\nprobes {probesHash}\nspec {specHash}\nadapter {adapterHash}");

    /// <summary>The path of the entry <paramref name="key"/>.</summary>
    public static string EntryPath(string cacheDir, string key) => Path.Combine(cacheDir, DeltasFolder, key + ".safetensors");

    /// <summary>The manifest path of the (base, probes, spec) context <paramref name="contextKey"/>.</summary>
    public static string ManifestPath(string cacheDir, string contextKey) => Path.Combine(cacheDir, ManifestsFolder, contextKey + ".jsonl");

    /// <summary>
    /// <see cref="Compute(string, string, string, DeltaMeasure, int, int, Action{DeltaCacheProgress}?, Device?, ScalarType)"/>
    /// of the delta activation of <paramref name="probes"/> under <paramref name="spec"/>.
    /// </summary>
    public static DeltaCacheResult Compute(
        string baseDir, string poolDir, string cacheDir, ProbeSet probes, DeltaSpec spec,
        int shardIndex = 0, int shardCount = 1, Action<DeltaCacheProgress>? progress = null,
        Device? device = null, ScalarType dtype = ScalarType.Float32) =>
        Compute(baseDir, poolDir, cacheDir, DeltaMeasure.Activation(probes, spec), shardIndex, shardCount, progress, device, dtype);

    /// <summary>
    /// Computes the deltas of this shard's adapters of the teacher pool in <paramref name="poolDir"/> (its
    /// <c>manifest.json</c>; adapters in task then step order, dealt round-robin: adapter p goes to shard p mod n).
    /// An adapter whose entry exists is reused; the others are loaded one at a time and computed with one
    /// embedder (<see cref="DeltaMeasure.CreateEmbedder"/>), so the base pass runs once (and not at all when every entry
    /// exists). An existing entry whose delta or norm is not finite is broken: it is computed again and replaced. A
    /// delta that comes out non-finite stops the call with an error naming the adapter, and is not written. Then the manifest of this (base, probes, spec) is
    /// rebuilt from the entries present for every adapter of the pool — a
    /// shard writes only its own entry files, and the last shard to finish lists them all; entries of adapters whose
    /// files changed since, and broken entries of other shards, are left on disk but not listed.
    /// </summary>
    /// <param name="baseDir">The base checkpoint (with its tokenizer when the probes are texts).</param>
    /// <param name="poolDir">The teacher pool's root.</param>
    /// <param name="cacheDir">The cache directory (created when missing).</param>
    /// <param name="measure">What the delta measures, and on which probes.</param>
    /// <param name="shardIndex">This shard (0-based).</param>
    /// <param name="shardCount">The number of shards.</param>
    /// <param name="progress">Called after each adapter of the shard.</param>
    /// <param name="device">Where the model runs (default: the CPU).</param>
    /// <param name="dtype">The compute dtype (entries are stored as float32 either way).</param>
    public static DeltaCacheResult Compute(
        string baseDir, string poolDir, string cacheDir, DeltaMeasure measure,
        int shardIndex = 0, int shardCount = 1, Action<DeltaCacheProgress>? progress = null,
        Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        if (shardCount < 1 || shardIndex < 0 || shardIndex >= shardCount)
            throw new LlgbmException($"Delta cache: shard {shardIndex}/{shardCount} is not a shard (0 ≤ i < n).");
        var context = Context.Of(baseDir, measure);
        var adapters = TeacherPool.ReadManifest(poolDir)
            .SelectMany(m => m.Checkpoints)
            .OrderBy(c => c.Task, StringComparer.Ordinal)
            .ThenBy(c => c.Step)
            .ThenBy(c => c.Adapter, StringComparer.Ordinal)
            .Select(c => (Checkpoint: c, Key: EntryKey(context.Base, context.Probes, context.Spec, AdapterHash(Path.Combine(poolDir, c.Adapter)))))
            .ToList();
        var shard = adapters.Where((_, p) => p % shardCount == shardIndex).ToList();
        Directory.CreateDirectory(Path.Combine(cacheDir, DeltasFolder));
        Directory.CreateDirectory(Path.Combine(cacheDir, ManifestsFolder));

        Model.Qwen2ForCausalLM? model = null;
        IDeltaEmbedder? embedder = null;
        var (computed, reused) = (0, 0);
        var shardEntries = new List<DeltaCacheEntry>();
        try
        {
            foreach (var (checkpoint, key) in shard)
            {
                var path = EntryPath(cacheDir, key);
                var broken = File.Exists(path) && !IsFinite(path);
                var exists = File.Exists(path) && !broken;
                if (exists)
                    reused++;
                else
                {
                    if (embedder is null)
                    {
                        model = Qwen2Checkpoint.Load(baseDir, device, dtype);
                        model.eval();
                        embedder = measure.CreateEmbedder(model, context.Tokenizer);
                    }
                    var adapterDir = Path.Combine(poolDir, checkpoint.Adapter);
                    using var lora = PeftAdapter.Load(adapterDir, model!.Config, device, dtype).Adapter;
                    using var raw = embedder.ComputeNoGrad(lora);
                    using var delta = raw.to(ScalarType.Float32).cpu();
                    FiniteCheck.Tensor(delta, $"Delta cache: the {measure.Kind.ToString().ToLowerInvariant()} delta of {adapterDir}");
                    var norm = Norm(delta);
                    var metadata = new Dictionary<string, string>
                    {
                        ["base_sha256"] = context.Base,
                        ["probes_sha256"] = context.Probes,
                        ["spec_sha256"] = context.Spec,
                        ["adapter_sha256"] = AdapterHash(adapterDir),
                        ["kind"] = measure.Kind.ToString().ToLowerInvariant(),
                        ["spec"] = measure.SpecKey,
                        ["probe_set"] = measure.ProbeSetName,
                        ["task"] = checkpoint.Task,
                        ["domain"] = checkpoint.Domain,
                        ["step"] = checkpoint.Step.ToString(CultureInfo.InvariantCulture),
                        ["adapter"] = checkpoint.Adapter,
                        ["norm"] = norm.ToString("R", CultureInfo.InvariantCulture),
                    };
                    SafetensorsWriter.Save(path, [new(TensorName, delta)], metadata);
                    computed++;
                }
                shardEntries.Add(ReadEntry(path, checkpoint, key));
                progress?.Invoke(new DeltaCacheProgress(shardEntries.Count, shard.Count, checkpoint.Adapter, exists, broken));
            }
        }
        finally
        {
            embedder?.Dispose();
            model?.Dispose();
        }

        var manifest = adapters
            .Where(a => File.Exists(EntryPath(cacheDir, a.Key)) && IsFinite(EntryPath(cacheDir, a.Key)))
            .Select(a => ReadEntry(EntryPath(cacheDir, a.Key), a.Checkpoint, a.Key))
            .ToList();
        var manifestPath = ManifestPath(cacheDir, context.Key);
        AtomicFile.Write(manifestPath, stream =>
        {
            using var writer = new StreamWriter(stream, leaveOpen: true);
            foreach (var entry in manifest)
            {
                writer.Write(JsonSerializer.Serialize(entry, LineOptions));
                writer.Write('\n');
            }
        });
        return new DeltaCacheResult(shardEntries, computed, reused, manifest, DeltaNormStats.Of(manifest), manifestPath);
    }

    /// <summary>
    /// The entries listed in the manifest of (<paramref name="baseDir"/>, <paramref name="probes"/>,
    /// <paramref name="spec"/>) in <paramref name="cacheDir"/>, as written by
    /// <see cref="Compute(string, string, string, ProbeSet, DeltaSpec, int, int, Action{DeltaCacheProgress}?, Device?, ScalarType)"/>.
    /// </summary>
    /// <exception cref="LlgbmException">There is no manifest for this context (compute the deltas first).</exception>
    public static IReadOnlyList<DeltaCacheEntry> ReadManifest(string cacheDir, string baseDir, ProbeSet probes, DeltaSpec spec) =>
        ReadManifest(cacheDir, baseDir, DeltaMeasure.Activation(probes, spec));

    /// <summary>
    /// The entries listed in the manifest of (<paramref name="baseDir"/>, <paramref name="measure"/>) in
    /// <paramref name="cacheDir"/>, as written by
    /// <see cref="Compute(string, string, string, DeltaMeasure, int, int, Action{DeltaCacheProgress}?, Device?, ScalarType)"/>.
    /// </summary>
    /// <exception cref="LlgbmException">There is no manifest for this context (compute the deltas first).</exception>
    public static IReadOnlyList<DeltaCacheEntry> ReadManifest(string cacheDir, string baseDir, DeltaMeasure measure) =>
        ReadManifest(cacheDir, Context.Of(baseDir, measure), measure);

    static IReadOnlyList<DeltaCacheEntry> ReadManifest(string cacheDir, Context context, DeltaMeasure measure)
    {
        var path = ManifestPath(cacheDir, context.Key);
        if (!File.Exists(path))
            throw new LlgbmException(
                $"{cacheDir}: no {measure.Kind.ToString().ToLowerInvariant()} delta manifest for this base, probe set ({measure.ProbeSetName}) " +
                $"and spec ({measure.SpecKey}); compute the deltas first.");
        var entries = new List<DeltaCacheEntry>();
        foreach (var line in File.ReadLines(path))
            if (line.Trim().Length > 0)
            {
                var entry = JsonSerializer.Deserialize<DeltaCacheEntry>(line, LineOptions)
                    ?? throw new LlgbmException($"{path}: an empty line entry.");
                // The key names the entry's file and the adapter a directory of the pool: both stay inside their folders.
                PathNames.Validate(entry.Key, $"the key of {entry.Task} at step {entry.Step}", path);
                PathNames.ValidateRelative(entry.Adapter, $"the adapter of {entry.Task} at step {entry.Step}", path);
                entries.Add(entry);
            }
        return entries;
    }

    /// <summary>
    /// Loads every delta of the manifest of (<paramref name="baseDir"/>, <paramref name="probes"/>,
    /// <paramref name="spec"/>), in manifest order; each entry's metadata is checked against the base, probe and spec
    /// hashes. The caller disposes the deltas.
    /// </summary>
    /// <exception cref="LlgbmException">The manifest or an entry is missing, or an entry belongs to another context.</exception>
    public static IReadOnlyList<LoadedDelta> Load(string cacheDir, string baseDir, ProbeSet probes, DeltaSpec spec) =>
        Load(cacheDir, baseDir, DeltaMeasure.Activation(probes, spec));

    /// <summary>
    /// Loads every delta of the manifest of (<paramref name="baseDir"/>, <paramref name="measure"/>), in manifest order;
    /// each entry's metadata is checked against the base, probe and spec hashes. The caller disposes the deltas.
    /// </summary>
    /// <exception cref="LlgbmException">The manifest or an entry is missing, or an entry belongs to another context.</exception>
    public static IReadOnlyList<LoadedDelta> Load(string cacheDir, string baseDir, DeltaMeasure measure)
    {
        var context = Context.Of(baseDir, measure);
        var loaded = new List<LoadedDelta>();
        try
        {
            foreach (var entry in ReadManifest(cacheDir, context, measure))
            {
                var path = EntryPath(cacheDir, entry.Key);
                if (!File.Exists(path))
                    throw new LlgbmException($"{path}: the delta of {entry.Adapter} listed in the manifest is missing.");
                using var reader = SafetensorsReader.Open(path);
                var meta = reader.Metadata;
                if (meta.GetValueOrDefault("base_sha256") != context.Base || meta.GetValueOrDefault("probes_sha256") != context.Probes
                    || meta.GetValueOrDefault("spec_sha256") != context.Spec)
                    throw new LlgbmException($"{path}: the entry was computed for another base, probe set or spec.");
                loaded.Add(new LoadedDelta(entry.Task, entry.Domain, entry.Step, entry.Adapter, reader.Read(TensorName)));
            }
            return loaded;
        }
        catch
        {
            foreach (var d in loaded)
                d.Dispose();
            throw;
        }
    }

    static double Norm(Tensor delta)
    {
        var values = delta.data<float>().ToArray();
        return Math.Sqrt(values.Sum(v => (double)v * v));
    }

    /// <summary>Whether the entry at <paramref name="path"/> holds a finite norm and a finite delta.</summary>
    static bool IsFinite(string path)
    {
        using var reader = SafetensorsReader.Open(path);
        if (!reader.Metadata.TryGetValue("norm", out var text)
            || !double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var norm) || !double.IsFinite(norm))
            return false;
        try
        {
            reader.Read(TensorName).Dispose();
            return true;
        }
        catch (NonFiniteException)
        {
            return false;
        }
    }

    static DeltaCacheEntry ReadEntry(string path, TeacherCheckpoint checkpoint, string key)
    {
        using var reader = SafetensorsReader.Open(path);
        var norm = reader.Metadata.TryGetValue("norm", out var text) && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var n)
            ? n
            : throw new LlgbmException($"{path}: the delta cache entry has no norm in its metadata.");
        return new DeltaCacheEntry(checkpoint.Task, checkpoint.Domain, checkpoint.Step, checkpoint.Adapter, key, norm);
    }

    /// <summary>The three context hashes, the context key, and the base's tokenizer when the probes need it.</summary>
    sealed record Context(string Base, string Probes, string Spec, string Key, ITokenizer? Tokenizer)
    {
        public static Context Of(string baseDir, DeltaMeasure measure)
        {
            if (!Directory.Exists(baseDir))
                throw new LlgbmException($"{baseDir}: no such base checkpoint directory.");
            var tokenizer = measure.NeedsTokenizer ? Tokenizers.Load(baseDir) : null;
            var baseHash = ContentHash.OfCheckpoint(baseDir);
            var probesHash = measure.ProbesHash(tokenizer);
            var specHash = ContentHash.OfText(measure.SpecKey);
            return new Context(baseHash, probesHash, specHash, ContextKey(baseHash, probesHash, specHash), tokenizer);
        }
    }
}
