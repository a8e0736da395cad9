# The QKD session and the qnet-qkd program (specs/qkd.md sections 1-3, 5, 10);
# included from apps/qkd/CMakeLists.txt.
add_library(qnet_qkd_session STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/sifting.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/qkd_session.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/qkd_session_frames.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/qkd_blocks.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/qkd_result.cc)
target_compile_options(qnet_qkd_session PRIVATE ${QNET_WARNINGS})
target_link_libraries(qnet_qkd_session PUBLIC qnet_app_client qnet_stack qnet_proto
  qnet_qkd_postproc qnet_qkd_auth OpenSSL::Crypto)

qnet_test(qkd_session_test LABEL unit
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/qkd_session_test.cc
  LIBS qnet_qkd_session qnet_app_fake_network)

add_executable(qnet-qkd ${CMAKE_CURRENT_SOURCE_DIR}/main.cc)
target_compile_options(qnet-qkd PRIVATE ${QNET_WARNINGS})
target_link_libraries(qnet-qkd PRIVATE qnet_qkd_session qnet_socket_app_client absl::flags
  absl::flags_parse absl::flags_usage)
if(TARGET qnet_kme)
  target_link_libraries(qnet-qkd PRIVATE qnet_kme qnet_http)
  target_compile_definitions(qnet-qkd PRIVATE QNET_QKD_WITH_KME)
endif()
