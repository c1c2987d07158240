using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LLGBM.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Lora;

/// <summary>
/// Where every value of a LoRA adapter sits in a fixed grid of LoRA tokens, as Drag-and-Drop LLMs lays adapters out
/// for its generator. The grid is [T, C] (or [N, T, C] for N adapters) with C = <see cref="ChunkWidth"/> + 2 channels.
/// <para>
/// Module order: by layer, ascending, and within a layer q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj
/// (<see cref="LoraTarget.All"/>), whatever order the LoRA config lists its targets in. Each module contributes two
/// blocks (<see cref="LoraTokenBlock"/>), A [r, in] first, then Bᵀ [r, out]. A block holds its factor's rows in order,
/// each row cut along the feature axis into ⌈features / W⌉ chunks of W = <see cref="ChunkWidth"/> features, one chunk a
/// token; the last chunk of a row is padded when W does not divide the features. A module of rank r on a linear layer
/// [out, in] therefore takes r · (⌈in / W⌉ + ⌈out / W⌉) tokens.
/// </para>
/// <para>
/// Channels: 0 … W − 1 hold the chunk's z-normalised values (padding after the real ones), channel
/// <see cref="MeanChannel"/> = W the chunk's mean and channel <see cref="StdChannel"/> = W + 1 its standard deviation
/// (see <see cref="LoraTokenizer"/>). <see cref="Mask"/> marks the entries that carry information.
/// </para>
/// The layout is serialised to JSON (<see cref="ToJson"/>) so that a generator checkpoint records the grid it emits.
/// </summary>
public sealed class LoraTokenLayout : IEquatable<LoraTokenLayout>
{
    /// <summary>The chunk width Drag-and-Drop LLMs uses for Qwen2.5-0.5B.</summary>
    public const int DefaultChunkWidth = 128;

    /// <summary>Channels after the values: the chunk's mean and its standard deviation.</summary>
    public const int ScaleChannels = 2;

    /// <summary>The <c>format</c> field of the layout's JSON.</summary>
    public const string FormatName = "llgbm-lora-token-layout";

    /// <summary>The <c>version</c> field of the layout's JSON.</summary>
    public const int FormatVersion = 1;

    readonly List<LoraTokenModule> modules;
    readonly List<LoraTokenBlock> blocks;

    /// <summary>
    /// The layout of the given low-rank modules (in any order; the layout sorts them) with chunks of
    /// <paramref name="chunkWidth"/> features. <paramref name="dropout"/> is the LoRA dropout that detokenised sets
    /// carry.
    /// </summary>
    /// <exception cref="LlgbmException">The chunk width is not positive, a path names no Qwen2 linear module, a path
    /// repeats, or a rank, feature count or scale is not positive and finite.</exception>
    public LoraTokenLayout(int chunkWidth, IEnumerable<LoraTokenModule> modules, double dropout = 0)
    {
        if (chunkWidth < 1)
            throw new LlgbmException($"LoRA token layout: the chunk width must be at least 1, found {chunkWidth}.");
        if (!(dropout is >= 0 and < 1))
            throw new LlgbmException($"LoRA token layout: the dropout must lie in [0, 1), found {dropout}.");
        ChunkWidth = chunkWidth;
        Dropout = dropout;
        var keyed = new List<(int Layer, int Kind, LoraTokenModule Module)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var module in modules)
        {
            if (LoraTarget.Parse(module.Path) is not { } target)
                throw new LlgbmException($"LoRA token layout: {module.Path} names no Qwen2 linear module (paths look like model.layers.0.self_attn.q_proj).");
            if (!seen.Add(module.Path))
                throw new LlgbmException($"LoRA token layout: {module.Path} appears twice.");
            if (module.Rank < 1 || module.InFeatures < 1 || module.OutFeatures < 1)
                throw new LlgbmException(
                    $"LoRA token layout: {module.Path} needs a positive rank and feature counts, found r {module.Rank}, [{module.OutFeatures}, " +
                    $"{module.InFeatures}].");
            if (!double.IsFinite(module.Scale))
                throw new LlgbmException($"LoRA token layout: {module.Path} has scale {module.Scale}; expected a finite number.");
            keyed.Add((target.Layer, LoraTarget.All.ToList().IndexOf(target.Module), module));
        }
        if (keyed.Count == 0)
            throw new LlgbmException("LoRA token layout: no modules.");
        this.modules = [.. keyed.OrderBy(k => k.Layer).ThenBy(k => k.Kind).Select(k => k.Module)];
        blocks = [];
        long offset = 0;
        foreach (var module in this.modules)
        {
            foreach (var (factor, features) in new[] { (LoraFactor.A, module.InFeatures), (LoraFactor.BTransposed, module.OutFeatures) })
            {
                var block = new LoraTokenBlock(module.Path, factor, offset, module.Rank, features, chunkWidth);
                blocks.Add(block);
                offset = block.End;
            }
        }
        Tokens = offset;
    }

    /// <summary>
    /// The layout of adapters of shape <paramref name="lora"/> (targets, layers, rank and alpha patterns, rsLoRA) on a
    /// model of architecture <paramref name="model"/>.
    /// </summary>
    public static LoraTokenLayout For(Qwen2Config model, LoraConfig lora, int chunkWidth = DefaultChunkWidth)
    {
        lora.Validate(model.NumHiddenLayers);
        var modules = lora.Paths(model.NumHiddenLayers).Distinct(StringComparer.Ordinal).Select(path =>
        {
            var (outFeatures, inFeatures) = LoraSet.ShapeOf(model, path);
            return new LoraTokenModule(path, lora.RankOf(path), outFeatures, inFeatures, lora.ScaleOf(path));
        });
        return new LoraTokenLayout(chunkWidth, modules, lora.Dropout);
    }

    /// <summary>Features per token, W.</summary>
    public int ChunkWidth { get; }

    /// <summary>The LoRA dropout that detokenised sets carry.</summary>
    public double Dropout { get; }

    /// <summary>The modules in grid order.</summary>
    public IReadOnlyList<LoraTokenModule> Modules => modules;

    /// <summary>The blocks in grid order: A then Bᵀ of each module; together they tile the tokens 0 … T − 1.</summary>
    public IReadOnlyList<LoraTokenBlock> Blocks => blocks;

    /// <summary>Tokens in the grid, T.</summary>
    public long Tokens { get; }

    /// <summary>Channels per token, C = W + 2.</summary>
    public int Channels => ChunkWidth + ScaleChannels;

    /// <summary>The channel holding each chunk's mean (W).</summary>
    public int MeanChannel => ChunkWidth;

    /// <summary>The channel holding each chunk's standard deviation (W + 1).</summary>
    public int StdChannel => ChunkWidth + 1;

    /// <summary>True when some row's features are not a multiple of the chunk width, so that the grid has padding.</summary>
    public bool HasPadding => blocks.Any(b => b.Padding > 0);

    /// <summary>The grid's shape: [T, C], or [N, T, C] with <paramref name="count"/> adapters.</summary>
    public long[] GridShape(long? count = null) => count is { } n ? [n, Tokens, Channels] : [Tokens, Channels];

    /// <summary>The module at <paramref name="path"/>, or null.</summary>
    public LoraTokenModule? Module(string path) => modules.FirstOrDefault(m => m.Path == path);

    /// <summary>The block, the row within the block and the chunk within the row that token <paramref name="token"/> holds.</summary>
    public (LoraTokenBlock Block, long Row, long Chunk) Locate(long token)
    {
        if (token < 0 || token >= Tokens)
            throw new LlgbmException($"LoRA token layout: token {token} is outside the grid's {Tokens} tokens.");
        int lo = 0, hi = blocks.Count - 1;
        while (lo < hi)
        {
            var mid = (lo + hi + 1) / 2;
            if (blocks[mid].Offset <= token)
                lo = mid;
            else
                hi = mid - 1;
        }
        var block = blocks[lo];
        var within = token - block.Offset;
        return (block, within / block.ChunksPerRow, within % block.ChunksPerRow);
    }

    /// <summary>Real values in each token (W, or fewer for the last chunk of a padded row), in token order.</summary>
    public long[] ValueCounts()
    {
        var counts = new long[Tokens];
        foreach (var block in blocks)
            for (long row = 0; row < block.Rows; row++)
                for (long chunk = 0; chunk < block.ChunksPerRow; chunk++)
                    counts[block.Offset + row * block.ChunksPerRow + chunk] = chunk == block.ChunksPerRow - 1 ? block.LastChunkFeatures : ChunkWidth;
        return counts;
    }

    /// <summary>
    /// A boolean [T, C] tensor, true where an entry carries information: the real values of each chunk and both scale
    /// channels; false on padding.
    /// </summary>
    public Tensor Mask(Device? device = null)
    {
        using var scope = NewDisposeScope();
        using var channels = Channels.ToScalar();
        var channel = arange(OwnedScalars.Zero, channels, OwnedScalars.One, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        var counts = tensor(ValueCounts(), device: device).unsqueeze(1);
        using var chunkWidth = ChunkWidth.ToScalar();
        return ((channel < counts) | (channel >= chunkWidth)).MoveToOuterDisposeScope();
    }

    /// <summary>A one-line description: tokens, channels, chunk width, modules and padding.</summary>
    public override string ToString()
    {
        var padding = ValueCounts().Sum(c => ChunkWidth - c);
        return string.Create(CultureInfo.InvariantCulture,
            $"[{Tokens}, {Channels}] LoRA tokens: chunks of {ChunkWidth} + mean, std over {modules.Count} modules ({padding} padding entries)");
    }

    /// <summary>
    /// The layout as JSON: <c>format</c>, <c>version</c>, <c>chunk_width</c>, <c>scale_channels</c> (["mean", "std"]),
    /// <c>tokens</c>, <c>channels</c>, <c>dropout</c>, and <c>modules</c> in grid order, each with <c>path</c>,
    /// <c>rank</c>, <c>out_features</c>, <c>in_features</c>, <c>scale</c> and its blocks <c>a</c> and <c>b_t</c>
    /// (<c>offset</c>, <c>tokens</c>, <c>chunks_per_row</c>). The derived counts are there for readers;
    /// <see cref="FromJson"/> checks them.
    /// </summary>
    public JsonObject ToJson()
    {
        JsonObject Block(LoraFactor factor, string path)
        {
            var block = blocks.First(b => b.Path == path && b.Factor == factor);
            return new JsonObject { ["offset"] = block.Offset, ["tokens"] = block.Tokens, ["chunks_per_row"] = block.ChunksPerRow };
        }
        return new JsonObject
        {
            ["format"] = FormatName,
            ["version"] = FormatVersion,
            ["chunk_width"] = ChunkWidth,
            ["scale_channels"] = new JsonArray("mean", "std"),
            ["tokens"] = Tokens,
            ["channels"] = Channels,
            ["dropout"] = Dropout,
            ["modules"] = new JsonArray([.. modules.Select(m => (JsonNode)new JsonObject
            {
                ["path"] = m.Path,
                ["rank"] = m.Rank,
                ["out_features"] = m.OutFeatures,
                ["in_features"] = m.InFeatures,
                ["scale"] = m.Scale,
                ["a"] = Block(LoraFactor.A, m.Path),
                ["b_t"] = Block(LoraFactor.BTransposed, m.Path),
            })]),
        };
    }

    /// <summary>The layout's JSON, indented.</summary>
    public string ToJsonString() => ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    /// <summary>Writes the layout's JSON to <paramref name="path"/> atomically.</summary>
    public void Save(string path) =>
        AtomicFile.Write(path, stream => stream.Write(Encoding.UTF8.GetBytes(ToJsonString())));

    /// <summary>Reads a layout written by <see cref="Save"/>.</summary>
    public static LoraTokenLayout Load(string path)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new LlgbmException($"{path}: not valid JSON ({e.Message}).", e);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new LlgbmException($"{path}: not found; expected a LoRA token layout.", e);
        }
        return FromJson(root as JsonObject ?? throw new LlgbmException($"{path}: expected a JSON object."), path);
    }

    /// <summary>
    /// Reads a layout from its JSON (<see cref="ToJson"/>); unknown keys are ignored. The derived counts (tokens,
    /// channels, block offsets and sizes) must agree with those the modules and chunk width give.
    /// </summary>
    /// <exception cref="LlgbmException">A field is missing, of the wrong type or inconsistent; the message names it.</exception>
    public static LoraTokenLayout FromJson(JsonObject json, string source = "LoRA token layout")
    {
        var format = Get<string>(json, "format", source);
        if (format != FormatName)
            throw new LlgbmException($"{source}: format is \"{format}\"; expected \"{FormatName}\".");
        var version = Get<int>(json, "version", source);
        if (version != FormatVersion)
            throw new LlgbmException($"{source}: version {version} is not supported; expected {FormatVersion}.");
        var width = Get<int>(json, "chunk_width", source);
        var dropout = json.ContainsKey("dropout") ? Get<double>(json, "dropout", source) : 0;
        if (json["modules"] is not JsonArray array)
            throw new LlgbmException($"{source}: modules must be an array of module objects.");
        var modules = new List<LoraTokenModule>();
        for (var i = 0; i < array.Count; i++)
        {
            var where = $"{source}: modules[{i}]";
            if (array[i] is not JsonObject m)
                throw new LlgbmException($"{where} must be an object.");
            modules.Add(new LoraTokenModule(
                Get<string>(m, "path", where), Get<int>(m, "rank", where), Get<long>(m, "out_features", where),
                Get<long>(m, "in_features", where), Get<double>(m, "scale", where)));
        }
        LoraTokenLayout layout;
        try
        {
            layout = new LoraTokenLayout(width, modules, dropout);
        }
        catch (LlgbmException e)
        {
            throw new LlgbmException($"{source}: {e.Message}", e);
        }
        void Expect(string field, long found, long expected)
        {
            if (found != expected)
                throw new LlgbmException($"{source}: {field} is {found}, but the modules and chunk width give {expected}.");
        }
        Expect("tokens", Get<long>(json, "tokens", source), layout.Tokens);
        Expect("channels", Get<long>(json, "channels", source), layout.Channels);
        for (var i = 0; i < modules.Count; i++)
        {
            var m = (JsonObject)array[i]!;
            if (layout.modules[i].Path != modules[i].Path)
                throw new LlgbmException($"{source}: modules[{i}] is {modules[i].Path}, but grid order puts {layout.modules[i].Path} there.");
            foreach (var (field, factor) in new[] { ("a", LoraFactor.A), ("b_t", LoraFactor.BTransposed) })
            {
                var where = $"modules[{i}].{field}";
                if (m[field] is not JsonObject b)
                    throw new LlgbmException($"{source}: {where} must be an object with offset, tokens and chunks_per_row.");
                var block = layout.blocks[2 * i + (factor == LoraFactor.A ? 0 : 1)];
                Expect($"{where}.offset", Get<long>(b, "offset", $"{source}: {where}"), block.Offset);
                Expect($"{where}.tokens", Get<long>(b, "tokens", $"{source}: {where}"), block.Tokens);
                Expect($"{where}.chunks_per_row", Get<long>(b, "chunks_per_row", $"{source}: {where}"), block.ChunksPerRow);
            }
        }
        return layout;
    }

    static T Get<T>(JsonObject json, string field, string where)
    {
        if (!json.TryGetPropertyValue(field, out var node) || node is null)
            throw new LlgbmException($"{where}: {field} is missing.");
        try
        {
            // Through the JSON text, so that parsed and freshly built objects read alike.
            return JsonSerializer.Deserialize<T>(node.ToJsonString()) ?? throw new JsonException("null");
        }
        catch (JsonException e)
        {
            throw new LlgbmException($"{where}: {field} is {node.ToJsonString()}; expected {(typeof(T) == typeof(string) ? "a string" : "a number")}.", e);
        }
    }

    /// <inheritdoc/>
    public bool Equals(LoraTokenLayout? other) =>
        other is not null && ChunkWidth == other.ChunkWidth && Dropout.Equals(other.Dropout) && modules.SequenceEqual(other.modules);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as LoraTokenLayout);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(ChunkWidth, Dropout, modules.Count, modules[0]);
}
