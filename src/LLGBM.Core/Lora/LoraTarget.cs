namespace LLGBM.Lora;

/// <summary>The linear modules of a Qwen2 decoder layer that LoRA can target, with their Hugging Face names.</summary>
public static class LoraTarget
{
    /// <summary>Every targetable module name, attention first.</summary>
    public static readonly IReadOnlyList<string> All = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    /// <summary>The attention projections.</summary>
    public static readonly IReadOnlyList<string> Attention = ["q_proj", "k_proj", "v_proj", "o_proj"];

    /// <summary>The state-dict path of a module, e.g. <c>model.layers.3.self_attn.q_proj</c>.</summary>
    public static string Path(int layer, string module) =>
        Attention.Contains(module) ? $"model.layers.{layer}.self_attn.{module}" : $"model.layers.{layer}.mlp.{module}";

    /// <summary>Parses a module path into (layer, module name), or null when it is not a targetable module's path.</summary>
    public static (int Layer, string Module)? Parse(string path)
    {
        var parts = path.Split('.');
        if (parts.Length != 5 || parts[0] != "model" || parts[1] != "layers" || !int.TryParse(parts[2], out var layer) || layer < 0)
            return null;
        var module = parts[4];
        var block = Attention.Contains(module) ? "self_attn" : "mlp";
        return All.Contains(module) && parts[3] == block ? (layer, module) : null;
    }
}
