// The shipped configs (configs/*.yaml) planned on synthetic tensor lists shaped like
// the models they are for: all-MiniLM-L6-v2 and RoBERTa base (both namings).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config_test_util.h"
#include "io/config.h"

namespace pgkm::io {
namespace {

Tensors minilm() {
  Tensors t = {f32("embeddings.word_embeddings.weight", {30522, 384}),
               f32("embeddings.position_embeddings.weight", {512, 384}),
               f32("embeddings.token_type_embeddings.weight", {2, 384}),
               f32("embeddings.LayerNorm.weight", {384}),
               f32("embeddings.LayerNorm.bias", {384}),
               {"embeddings.position_ids", "I64", {1, 512}},
               f32("pooler.dense.weight", {384, 384}),
               f32("pooler.dense.bias", {384})};
  for (int n = 0; n < 6; ++n) {
    const std::string p = "encoder.layer." + std::to_string(n) + ".";
    for (const std::string name : {"attention.self.query", "attention.self.key",
                                   "attention.self.value", "attention.output.dense"}) {
      t.push_back(f32(p + name + ".weight", {384, 384}));
      t.push_back(f32(p + name + ".bias", {384}));
    }
    t.push_back(f32(p + "intermediate.dense.weight", {1536, 384}));
    t.push_back(f32(p + "intermediate.dense.bias", {1536}));
    t.push_back(f32(p + "output.dense.weight", {384, 1536}));
    t.push_back(f32(p + "output.dense.bias", {384}));
    for (const std::string norm : {"attention.output.LayerNorm.", "output.LayerNorm."}) {
      t.push_back(f32(p + norm + "weight", {384}));
      t.push_back(f32(p + norm + "bias", {384}));
    }
  }
  return t;
}

// RoBERTa base; `hf` picks Hugging Face names (with the "roberta." prefix), else fairseq's.
Tensors roberta(bool hf) {
  const std::string emb = hf ? "roberta.embeddings." : "encoder.sentence_encoder.";
  Tensors t = {f32(emb + (hf ? "word_embeddings" : "embed_tokens") + ".weight", {50265, 768}),
               f32(emb + (hf ? "position_embeddings" : "embed_positions") + ".weight", {514, 768}),
               f32(hf ? "roberta.pooler.dense.weight" : "encoder.lm_head.dense.weight", {768, 768}),
               f32(hf ? "classifier.dense.weight" : "encoder.lm_head.weight", {768, 768})};
  const std::vector<std::string> hf_names = {"attention.self.query", "attention.self.key",
                                             "attention.self.value", "attention.output.dense",
                                             "intermediate.dense",   "output.dense"};
  const std::vector<std::string> fs_names = {"self_attn.q_proj",
                                             "self_attn.k_proj",
                                             "self_attn.v_proj",
                                             "self_attn.out_proj",
                                             "fc1",
                                             "fc2"};
  for (int n = 0; n < 12; ++n) {
    const std::string p = (hf ? "roberta.encoder.layer." : "encoder.sentence_encoder.layers.") +
                          std::to_string(n) + ".";
    for (size_t j = 0; j < 6; ++j) {
      const std::vector<int64_t> shape =
          j == 4 ? std::vector<int64_t>{3072, 768}
                 : (j == 5 ? std::vector<int64_t>{768, 3072} : std::vector<int64_t>{768, 768});
      const std::string name = p + (hf ? hf_names : fs_names)[j];
      t.push_back(f32(name + ".weight", shape));
      t.push_back(f32(name + ".bias", {shape[0]}));
    }
    t.push_back(f32(p + (hf ? "output.LayerNorm.weight" : "final_layer_norm.weight"), {768}));
  }
  return t;
}

QuantConfig shipped(const std::string& file) {
  return load_config(std::string(PGKM_SOURCE_DIR) + "/configs/" + file);
}

TEST(ConfigShipped, MiniLmRatio18) {
  const QuantConfig config = shipped("minilm_ratio_18.27.yaml");
  EXPECT_EQ(config.format, QuantConfig::Format::kNative);
  const Plan plan = plan_layers(config, minilm(), true);
  ASSERT_EQ(plan.quantize.size(), 37u);
  EXPECT_EQ(plan.quantize.size() + plan.keep.size(), minilm().size());
  const LayerPlan* emb = find_layer(plan, "embeddings.word_embeddings.weight");
  EXPECT_EQ(emb->block_size, 16);
  EXPECT_EQ(emb->n_centroids, 256);
  for (const LayerPlan& layer : plan.quantize) {
    if (layer.tensor == emb->tensor) continue;
    EXPECT_EQ(layer.type, ModuleType::kLinear) << layer.tensor;
    EXPECT_EQ(layer.block_size, 4) << layer.tensor;
    EXPECT_EQ(layer.n_centroids, 256) << layer.tensor;
  }
  for (const std::string name :
       {"embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight",
        "pooler.dense.weight", "embeddings.position_ids"}) {
    EXPECT_TRUE(kept(plan, name)) << name;
  }
}

// The quickstart's default: every weight but the 2-row token-type embedding quantized.
TEST(ConfigShipped, MiniLmDefault) {
  const Plan plan = plan_layers(shipped("minilm.yaml"), minilm(), true);
  EXPECT_TRUE(plan.warnings.empty());
  ASSERT_EQ(plan.quantize.size(), 39u);
  for (const LayerPlan& layer : plan.quantize) {
    const bool attention = layer.tensor.find(".attention.") != std::string::npos;
    int b = attention ? 2 : 3, k = attention ? 256 : 1536;
    if (layer.tensor == "embeddings.word_embeddings.weight") {
      b = 6, k = 2048;
    } else if (layer.tensor == "embeddings.position_embeddings.weight") {
      b = 4, k = 1024;
    } else if (layer.tensor == "pooler.dense.weight") {
      b = 8, k = 256;
    } else {
      EXPECT_EQ(layer.type, ModuleType::kLinear) << layer.tensor;
    }
    EXPECT_EQ(layer.block_size, b) << layer.tensor;
    EXPECT_EQ(layer.n_centroids, k) << layer.tensor;
  }
  EXPECT_TRUE(kept(plan, "embeddings.token_type_embeddings.weight"));
}

void expect_roberta_plan(const Plan& plan, const std::string& embedding, size_t n_tensors) {
  EXPECT_TRUE(plan.warnings.empty());
  ASSERT_EQ(plan.quantize.size(), 73u);
  EXPECT_EQ(plan.quantize.size() + plan.keep.size(), n_tensors);
  for (const LayerPlan& layer : plan.quantize) {
    const bool is_emb = layer.tensor == embedding;
    EXPECT_EQ(layer.type, is_emb ? ModuleType::kEmbedding : ModuleType::kLinear) << layer.tensor;
    EXPECT_EQ(layer.block_size, is_emb ? 16 : 4) << layer.tensor;
    EXPECT_EQ(layer.n_centroids, is_emb ? 768 : 3072) << layer.tensor;
  }
}

TEST(ConfigShipped, RobertaBaseFairseq) {
  const QuantConfig config = shipped("roberta_base_fairseq.yaml");
  EXPECT_EQ(config.format, QuantConfig::Format::kFairseq);
  expect_roberta_plan(plan_layers(config, roberta(false), true),
                      "encoder.sentence_encoder.embed_tokens.weight", roberta(false).size());
}

TEST(ConfigShipped, RobertaBaseHuggingFace) {
  const QuantConfig config = shipped("roberta_base.yaml");
  EXPECT_EQ(config.format, QuantConfig::Format::kNative);
  expect_roberta_plan(plan_layers(config, roberta(true), true),
                      "roberta.embeddings.word_embeddings.weight", roberta(true).size());
}

}  // namespace
}  // namespace pgkm::io
